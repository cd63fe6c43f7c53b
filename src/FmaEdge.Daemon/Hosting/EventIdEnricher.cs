using Serilog.Core;
using Serilog.Events;

namespace FmaEdge.Daemon.Hosting;

/// <summary>Copies Microsoft.Extensions.Logging's structured <c>EventId</c> into a plain <c>Eid</c> property, so text
/// output templates can show the stable event id (templates cannot reach into structures). Stateless, thread-safe.</summary>
public sealed class EventIdEnricher : ILogEventEnricher
{
    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
    {
        if (logEvent.Properties.TryGetValue("EventId", out var value) && value is StructureValue s)
        {
            var id = s.Properties.FirstOrDefault(p => p.Name == "Id")?.Value;
            if (id is ScalarValue { Value: int n } && n != 0)
            {
                logEvent.AddPropertyIfAbsent(propertyFactory.CreateProperty("Eid", n));
            }
        }
    }
}
