namespace FmaEdge.Messaging.Publishing;

/// <summary>What every broker connection of the daemon (the JSON publisher, the Sparkplug B one) does between attempts,
/// and how it words a failure. Stateless.</summary>
internal static class ConnectionRetry
{
    /// <summary>The wait before attempt <paramref name="attempt"/> + 1: Mqtt.ReconnectMinSeconds doubling per failed
    /// attempt up to Mqtt.ReconnectMaxSeconds, with +-20 % jitter so many nodes do not reconnect in step.</summary>
    public static TimeSpan Delay(MqttOptions options, int attempt)
    {
        var baseSeconds = Math.Min(options.ReconnectMaxSeconds, options.ReconnectMinSeconds * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromSeconds(baseSeconds * (0.8 + (0.4 * Random.Shared.NextDouble())));
    }

    /// <summary>The exception's message, with its inner exception's (MQTTnet wraps the socket error).</summary>
    public static string Describe(Exception ex) => ex.InnerException is { } inner ? $"{ex.Message} ({inner.Message})" : ex.Message;
}
