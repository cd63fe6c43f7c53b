using System.Diagnostics;

namespace FmaEdge.Messaging.Tests.Support;

/// <summary>A throw-away PKI made with the real openssl: a CA, a server certificate for 127.0.0.1 and a client
/// certificate (PEM and PFX), plus a mosquitto password file. Immutable after creation.</summary>
public sealed record TestCertificates(string Folder, string CaPem, string ServerPem, string ServerKey, string ClientPem, string ClientKey,
    string ClientPfx, string PasswordFile)
{
    public const string User = "edge";
    public const string Password = "s3cret-pw";
    public const string PfxPassword = "pfx-pw";

    public static async Task<TestCertificates> CreateAsync(string folder)
    {
        string P(string f) => Path.Combine(folder, f);
        await File.WriteAllTextAsync(P("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n");
        await File.WriteAllTextAsync(P("client.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
        await RunAsync("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", P("ca.key"), "-out", P("ca.pem"), "-days", "2", "-subj", "/CN=FmaEdge Test CA");
        foreach (var who in new[] { "server", "client" })
        {
            await RunAsync("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", P($"{who}.key"), "-out", P($"{who}.csr"), "-subj", $"/CN=fmaedge-{who}");
            await RunAsync("openssl", "x509", "-req", "-in", P($"{who}.csr"), "-CA", P("ca.pem"), "-CAkey", P("ca.key"), "-CAcreateserial",
                "-out", P($"{who}.pem"), "-days", "2", "-extfile", P($"{who}.ext"));
        }

        await RunAsync("openssl", "pkcs12", "-export", "-in", P("client.pem"), "-inkey", P("client.key"), "-out", P("client.pfx"), "-passout", "pass:" + PfxPassword);
        await RunAsync("/usr/bin/mosquitto_passwd", "-c", "-b", P("passwd"), User, Password);
        return new TestCertificates(folder, P("ca.pem"), P("server.pem"), P("server.key"), P("client.pem"), P("client.key"), P("client.pfx"), P("passwd"));
    }

    private static async Task RunAsync(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({p.ExitCode}): {await err}");
        }
    }
}
