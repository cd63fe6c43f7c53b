using System.Diagnostics;

namespace FmaEdge.TestSupport;

/// <summary>What a finished tool printed and returned.</summary>
public sealed record ProcessOutcome(int ExitCode, string StdOut, string StdErr);

/// <summary>Runs a real command-line tool (mosquitto_sub, mosquitto_passwd, ...) with a deadline: a tool that hangs is
/// killed and the test fails naming it.</summary>
public static class ExternalProcess
{
    public static async Task<ProcessOutcome> RunAsync(string exe, IEnumerable<string> args, TimeSpan timeout, string? stdin = null)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {exe}");
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }

        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} {string.Join(' ', psi.ArgumentList)} did not finish within {timeout.TotalSeconds} s");
        }

        return new ProcessOutcome(p.ExitCode, await output, await error);
    }
}
