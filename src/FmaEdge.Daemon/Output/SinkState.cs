namespace FmaEdge.Daemon.Output;

/// <summary>Delivery state of a sink, shown by <c>fma-edge status</c>.</summary>
/// <param name="Kind">"mqtt", "folder", ...</param>
/// <param name="Connected">True while results are being delivered (broker connected, folder writable).</param>
/// <param name="Endpoint">Where results go (broker URI, folder).</param>
/// <param name="OutboxDepth">Committed results not yet delivered.</param>
/// <param name="Detail">Why not connected, cap reached, etc.; null when all is well.</param>
/// <param name="Sparkplug">The Sparkplug B output when enabled (kind "sparkplug", endpoint group/edge node, connected
/// when born and online, outbox = results waiting in its feed, detail = its state and last error).</param>
public sealed record SinkState(string Kind, bool Connected, string Endpoint, long OutboxDepth, string? Detail = null, SinkState? Sparkplug = null);
