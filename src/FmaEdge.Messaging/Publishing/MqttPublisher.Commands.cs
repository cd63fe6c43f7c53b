using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Publishing;

/// <summary>Commands from the broker: software triggers on <c>&lt;prefix&gt;/&lt;source&gt;/trigger</c> (docs/mqtt.md).
/// Who may send one is the broker's decision (its logins and ACL), as for every other topic.</summary>
public sealed partial class MqttPublisher
{
    private Func<string, bool>? _triggerHandler;
    private long _triggersTaken;
    private long _triggersRefused;

    /// <summary>Called with the source (topic level) of each trigger message; returns whether the source took it. Set
    /// before <see cref="StartAsync"/>: the publisher subscribes to the trigger topics at every connect while it is set.
    /// Runs on the MQTT client's receive thread, so it must be quick and must not block.</summary>
    public Func<string, bool>? TriggerHandler
    {
        get => Volatile.Read(ref _triggerHandler);
        set => Volatile.Write(ref _triggerHandler, value);
    }

    /// <summary>Trigger messages a source took, and those it refused or that were ignored (retained).</summary>
    public (long Taken, long Refused) Triggers => (Interlocked.Read(ref _triggersTaken), Interlocked.Read(ref _triggersRefused));

    private async Task SubscribeTriggersAsync(CancellationToken ct)
    {
        if (TriggerHandler is null)
        {
            return;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromSeconds(_o.PublishTimeoutSeconds));
        // Clean start, and retained triggers are not sent on subscribe: a trigger is for now, never replayed later.
        var options = new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic(Topics.Triggers)
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .WithNoLocal(true)
                .WithRetainHandling(MqttRetainHandling.DoNotSendOnSubscribe))
            .Build();
        var result = await _client.SubscribeAsync(options, cts.Token).ConfigureAwait(false);
        foreach (var item in result.Items.Where(i => i.ResultCode > MqttClientSubscribeResultCode.GrantedQoS2))
        {
            LogTriggerSubscriptionRefused(_log, Topics.Triggers, item.ResultCode.ToString());
        }
    }

    private Task OnMessageReceivedAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        if (TriggerHandler is not { } handler || Topics.TriggerSource(e.ApplicationMessage.Topic) is not { } source)
        {
            return Task.CompletedTask;
        }

        string? refused = null;
        if (e.ApplicationMessage.Retain)
        {
            refused = "retained (a trigger is for the moment it is sent)";
        }
        else
        {
            try
            {
                if (!handler(source))
                {
                    refused = "no such source, it does not take triggers, or its camera is not acquiring";
                }
            }
            catch (Exception ex)
            {
                refused = ex.Message;
            }
        }

        if (refused is null)
        {
            Interlocked.Increment(ref _triggersTaken);
        }
        else
        {
            Interlocked.Increment(ref _triggersRefused);
            LogTriggerRefused(_log, source, refused);
        }

        return Task.CompletedTask;
    }

    [LoggerMessage(EventId = 6010, Level = LogLevel.Warning, Message = "MQTT trigger for {Source} not taken: {Reason}")]
    private static partial void LogTriggerRefused(ILogger logger, string source, string reason);

    [LoggerMessage(EventId = 6011, Level = LogLevel.Error, Message = "The broker refused the subscription to {Filter} ({Code}): software triggers over MQTT will not arrive")]
    private static partial void LogTriggerSubscriptionRefused(ILogger logger, string filter, string code);
}
