using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Publishing;

/// <summary>Turns <see cref="MqttOptions"/> into MQTTnet connect options: endpoint, MQTT 5, credentials, TLS
/// (CA file, client certificate) and the retained last will. Loads certificate files once. Thread-safe after
/// construction.</summary>
internal sealed class MqttConnectOptionsFactory
{
    private readonly MqttOptions _o;
    private readonly X509Certificate2Collection? _ca;
    private readonly X509Certificate2? _clientCert;

    public MqttConnectOptionsFactory(MqttOptions options)
    {
        _o = options;
        if (options.Tls.Enabled)
        {
            if (!string.IsNullOrEmpty(options.Tls.CaFile))
            {
                _ca = [];
                _ca.ImportFromPemFile(options.Tls.CaFile);
                if (_ca.Count == 0)
                {
                    throw new ArgumentException($"Mqtt.Tls.CaFile holds no PEM certificate: {options.Tls.CaFile}");
                }
            }

            if (!string.IsNullOrEmpty(options.Tls.ClientCertificateFile))
            {
                _clientCert = LoadClientCertificate(options.Tls);
            }
        }
    }

    /// <summary>"host:port" plus " (tls)" when encrypted, for status.</summary>
    public string Describe() => $"{_o.Host}:{_o.Port}{(_o.Tls.Enabled ? " (tls)" : "")}";

    /// <summary>The publisher's connection: its client id and the retained last will.</summary>
    public MqttClientOptions Build(byte[] willPayload, string willTopic) =>
        Common(_o.EffectiveClientId)
            .WithWillTopic(willTopic)
            .WithWillPayload(willPayload)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithWillRetain(true)
            .WithWillContentType("application/json")
            .Build();

    /// <summary>The Sparkplug B connection: its own client id, and the NDEATH death certificate as the will
    /// (QoS 1, not retained; Sparkplug 3.0 section 5.1.1). Clean start, session expiry 0, as Sparkplug requires.</summary>
    public MqttClientOptions BuildSparkplug(string clientId, string deathTopic, byte[] deathPayload) =>
        Common(clientId)
            .WithWillTopic(deathTopic)
            .WithWillPayload(deathPayload)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithWillRetain(false)
            .WithSessionExpiryInterval(0)
            .Build();

    /// <summary>An observer's connection (fleet view): same broker, TLS and login, its own client id, no will.</summary>
    public MqttClientOptions BuildObserver(string clientId) => Common(clientId).Build();

    private MqttClientOptionsBuilder Common(string clientId)
    {
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer(_o.Host, _o.Port)
            .WithClientId(clientId)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCleanStart(true)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(_o.KeepAliveSeconds))
            .WithTimeout(TimeSpan.FromSeconds(_o.ConnectTimeoutSeconds));
        if (!string.IsNullOrEmpty(_o.Username))
        {
            b.WithCredentials(_o.Username, _o.Password ?? "");
        }

        if (_o.Tls.Enabled)
        {
            b.WithTlsOptions(t =>
            {
                t.UseTls(true).WithTargetHost(string.IsNullOrEmpty(_o.Tls.ServerName) ? _o.Host : _o.Tls.ServerName);
                if (_o.Tls.AllowUntrustedCertificates)
                {
                    t.WithAllowUntrustedCertificates(true).WithIgnoreCertificateChainErrors(true)
                        .WithCertificateValidationHandler(_ => true);
                }
                else if (_ca is not null)
                {
                    t.WithCertificateValidationHandler(a => ValidateAgainstCa(a.Certificate, a.Chain, a.SslPolicyErrors, _ca));
                }

                if (_clientCert is not null)
                {
                    t.WithClientCertificates([_clientCert]);
                }
            });
        }

        return b;
    }

    // A private CA is the normal case on a factory network: trust exactly the configured roots, but never a
    // name mismatch (that is the attack TLS is there to stop).
    internal static bool ValidateAgainstCa(X509Certificate? cert, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection ca) =>
        cert is not null && !errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable)
            && !errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) && ChainsTo(cert, presented, ca);

    /// <summary>True when <paramref name="cert"/> chains to one of <paramref name="ca"/> (and only those roots), using the
    /// intermediates the peer presented; no name check (the broker checks client certificates with it too).</summary>
    internal static bool ChainsTo(X509Certificate cert, X509Chain? presented, X509Certificate2Collection ca)
    {
        using var leaf = X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var el in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(el.Certificate);
            }
        }

        return chain.Build(leaf);
    }

    private static X509Certificate2 LoadClientCertificate(MqttTlsOptions tls)
    {
        var path = tls.ClientCertificateFile!;
        if (path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase))
        {
            return X509CertificateLoader.LoadPkcs12FromFile(path, tls.ClientCertificatePassword);
        }

        var pem = string.IsNullOrEmpty(tls.ClientCertificatePassword)
            ? X509Certificate2.CreateFromPemFile(path, tls.ClientKeyFile)
            : X509Certificate2.CreateFromEncryptedPemFile(path, tls.ClientCertificatePassword, tls.ClientKeyFile);

        // SslStream wants a key it can use for the handshake; a PKCS#12 round trip gives a persisted-style key
        // on every platform.
        using (pem)
        {
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
    }
}
