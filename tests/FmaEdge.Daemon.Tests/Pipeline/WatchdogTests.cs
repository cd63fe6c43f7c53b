using FmaEdge.Daemon.Configuration;
using FmaEdge.Daemon.Hosting;
using FmaEdge.Daemon.Models;
using FmaEdge.Daemon.Tests.Support;
using FmaEdge.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;

namespace FmaEdge.Daemon.Tests.Pipeline;

public sealed class WatchdogTests
{
    [Fact]
    public async Task Watchdog_WedgedInferenceStage_StopsPingingUntilItMovesAgain()
    {
        using var tmp = new TempFolder("watchdog");
        var notifier = new RecordingNotifier();
        using var gate = new ManualResetEventSlim(initialState: true);
        await using var d = await DaemonHarness.StartAsync(tmp.Path, s => s["FmaEdge:Pipeline:StallSeconds"] = "5", services =>
        {
            services.AddSingleton<ISystemdNotifier>(notifier);
            services.AddSingleton(new WatchdogSettings { Interval = TimeSpan.FromMilliseconds(300) });
            services.AddSingleton<IClassifierLoader>(sp => new WrappingLoader(
                new OnnxClassifierLoader(sp.GetRequiredService<FmaEdgeOptions>(), sp.GetRequiredService<ILoggerFactory>()), classify =>
                {
                    gate.Wait();
                    return classify();
                }));
        });

        await DaemonHarness.WaitUntilAsync(() => notifier.Count("WATCHDOG=1") >= 3, "watchdog pings while healthy");
        var states = notifier.States.ToList();
        var ready = states.IndexOf("READY=1");
        Assert.True(ready >= 0 && ready < states.IndexOf("WATCHDOG=1"), "READY before the first watchdog ping");
        Assert.Contains("STATUS=loading and warming the model", states.Take(ready));
        Assert.Contains("STATUS=opening sources", states.Take(ready));
        Assert.Contains(notifier.States, s => s.StartsWith("STATUS=healthy", StringComparison.Ordinal));

        gate.Reset(); // the next Classify call hangs, like a wedged GPU driver would
        d.Drop(TestPaths.SampleImages("val", perLeaf: 1).Take(1));
        await DaemonHarness.WaitUntilAsync(() => d.Pipeline.Heartbeats[1].BusyFor > TimeSpan.FromSeconds(5.3), "the stage to pass its stall limit", 15_000);
        var before = notifier.Count("WATCHDOG=1");
        await Task.Delay(1000);
        Assert.Equal(before, notifier.Count("WATCHDOG=1")); // systemd would now kill and restart the daemon
        Assert.Contains(d.Status.Snapshot().Problems, p => p.Contains("infer", StringComparison.Ordinal) && p.Contains("wedged", StringComparison.Ordinal));

        gate.Set();
        await DaemonHarness.WaitUntilAsync(() => d.Results().Count == 1, "the result once unwedged");
        await DaemonHarness.WaitUntilAsync(() => notifier.Count("WATCHDOG=1") > before + 2, "pings again");
    }

    private sealed class RecordingNotifier : ISystemdNotifier
    {
        private readonly List<string> _states = [];

        public bool IsEnabled => true;

        public IReadOnlyList<string> States
        {
            get
            {
                lock (_states)
                {
                    return _states.ToList();
                }
            }
        }

        public int Count(string state)
        {
            lock (_states)
            {
                return _states.Count(s => s == state);
            }
        }

        public void Notify(ServiceState state)
        {
            lock (_states)
            {
                _states.Add(state.ToString());
            }
        }
    }
}
