using Microsoft.Extensions.Logging;
using MQTTnet;

namespace FmaEdge.Messaging.Publishing;

/// <summary>Log messages (source-generated) and error text.</summary>
public sealed partial class MqttPublisher
{
    private static string Describe(Exception ex) => ConnectionRetry.Describe(ex);

    [LoggerMessage(EventId = 6000, Level = LogLevel.Information, Message = "MQTT connected to {Broker}, {Backlog} message(s) queued")]
    private static partial void LogConnected(ILogger logger, string broker, long backlog);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "MQTT connection to {Broker} failed, retrying in {DelaySeconds:F1} s: {Error}")]
    private static partial void LogConnectFailed(ILogger logger, string broker, double delaySeconds, string error);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "MQTT disconnected: {Reason}; results go to the outbox until it returns")]
    private static partial void LogDisconnected(ILogger logger, string reason);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Warning, Message = "MQTT publish failed, reconnecting: {Error}")]
    private static partial void LogPublishFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Error, Message = "MQTT broker refused a message on {Topic} ({Reason}); dropped")]
    private static partial void LogRejected(ILogger logger, string topic, MqttClientPublishReasonCode reason);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Warning, Message = "Outbox full: dropped {Dropped} oldest result(s); depth {Depth}, {Bytes} bytes")]
    private static partial void LogOutboxFull(ILogger logger, long dropped, long depth, long bytes);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Error, Message = "Outbox recovered: {Recovery}")]
    private static partial void LogOutboxRecovered(ILogger logger, string recovery);

    [LoggerMessage(EventId = 6007, Level = LogLevel.Warning, Message = "MQTT clean stop incomplete: {Error}")]
    private static partial void LogStopError(ILogger logger, string error);

    [LoggerMessage(EventId = 6009, Level = LogLevel.Error, Message = "Outbox cannot store a {Kind} event ({Error}); sent directly, not durably")]
    private static partial void LogEventNotStored(ILogger logger, string kind, string error);

    [LoggerMessage(EventId = 6008, Level = LogLevel.Warning, Message = "A StateChanged handler threw: {Error}")]
    private static partial void LogHandlerFailed(ILogger logger, string error);
}
