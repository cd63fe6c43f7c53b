using System.Security.Cryptography.X509Certificates;
using FmaEdge.Messaging.Broker;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace FmaEdge.Messaging.Tests.Broker;

/// <summary>The embedded broker's TLS listener with client certificates (docs/mqtt.md, "On a network"), with a PKI made
/// by the real openssl: the daemon's own publisher gets in with its certificate; plain TCP, TLS without a certificate
/// and a certificate from another CA are refused; the certificate's name is the user the ACL knows.</summary>
public sealed class EmbeddedBrokerTlsTests
{
    [Fact]
    public async Task TlsWithClientCertificates_OnlyCertifiedClientsGetIn_AndTheCertificateNameIsTheAclUser()
    {
        using var dir = new TempFolder("tls");
        var certs = await TestCertificates.CreateAsync(dir.Path);
        using var otherDir = new TempFolder("tls-other");
        var other = await TestCertificates.CreateAsync(otherDir.Path); // a second, unrelated CA
        var acl = dir.File("acl");
        await File.WriteAllTextAsync(acl, "user fmaedge-client\ntopic readwrite fma/#\n");
        var port = MosquittoBroker.FreeLoopbackPort();
        var options = new EmbeddedBrokerOptions
        {
            Port = port,
            AclFile = acl,
            Tls = new EmbeddedTlsOptions
            {
                Enabled = true,
                CertificateFile = certs.ServerPem,
                KeyFile = certs.ServerKey,
                ClientCaFile = certs.CaPem,
                RequireClientCertificate = true,
            },
        };
        Assert.Empty(MqttOptionsWith(options, certs).Validate());
        Assert.False(options.AnonymousAllowed);
        await using var broker = new EmbeddedBroker(options);
        await broker.StartAsync(CancellationToken.None);

        // The daemon's publisher, with the client certificate and the CA of the broker's certificate.
        using var outbox = new TempFolder("tls-outbox");
        var pubOptions = MqttOptionsWith(options, certs);
        pubOptions.OutboxPath = outbox.File("outbox.db");
        pubOptions.Embedded = new EmbeddedBrokerOptions { Enabled = false };
        await using var pub = new MqttPublisher(pubOptions, "0.9.0");
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);

        using var reader = await ConnectAsync(port, certs.CaPem, certs.ClientPfx);
        var got = new List<string>();
        reader.ApplicationMessageReceivedAsync += e =>
        {
            lock (got)
            {
                got.Add(e.ApplicationMessage.Topic);
            }

            return Task.CompletedTask;
        };
        await reader.SubscribeAsync("fma/#", MqttQualityOfServiceLevel.AtLeastOnce);
        var commit = pub.CommitResult(Samples.Result("line-1", 0));
        await Wait.UntilAsync(() => { lock (got) { return got.Contains("fma/test-node/line-1/result"); } }, TimeSpan.FromSeconds(15), "the result over TLS");

        // The certificate's name is the ACL user: fma/# is granted, anything else is not.
        var refused = await reader.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("plant/other").WithPayload("x")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.NotAuthorized, refused.ReasonCode);
        Assert.False(string.IsNullOrEmpty(commit.MessageId));

        // Refused: plain TCP, TLS without a client certificate, a certificate from another CA.
        Assert.NotNull(await RefusedAsync(() => ConnectPlainAsync(port)));
        Assert.NotNull(await RefusedAsync(() => ConnectAsync(port, certs.CaPem, clientPfx: null)));
        Assert.NotNull(await RefusedAsync(() => ConnectAsync(port, certs.CaPem, other.ClientPfx)));
    }

    private static MqttOptions MqttOptionsWith(EmbeddedBrokerOptions embedded, TestCertificates certs) => new()
    {
        Host = "127.0.0.1",
        Port = embedded.Port,
        NodeName = "test-node",
        Embedded = embedded,
        Tls = new MqttTlsOptions { Enabled = true, CaFile = certs.CaPem, ClientCertificateFile = certs.ClientPem, ClientKeyFile = certs.ClientKey },
        ReconnectMinSeconds = 0.1,
        ReconnectMaxSeconds = 0.5,
        ConnectTimeoutSeconds = 3,
    };

    private static async Task<IMqttClient> ConnectAsync(int port, string caPem, string? clientPfx)
    {
        var ca = new X509Certificate2Collection();
        ca.ImportFromPemFile(caPem);
        var client = new MqttClientFactory().CreateMqttClient();
        try
        {
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithProtocolVersion(MqttProtocolVersion.V500)
                .WithClientId("tls-" + Guid.NewGuid().ToString("N")[..8]).WithTimeout(TimeSpan.FromSeconds(5))
                .WithTlsOptions(t =>
                {
                    t.UseTls(true).WithTargetHost("127.0.0.1")
                        .WithCertificateValidationHandler(a => PublishingTrust(a.Certificate, a.Chain, a.SslPolicyErrors, ca));
                    if (clientPfx is not null)
                    {
                        t.WithClientCertificates([X509CertificateLoader.LoadPkcs12FromFile(clientPfx, TestCertificates.PfxPassword)]);
                    }
                }).Build());
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    private static async Task<IMqttClient> ConnectPlainAsync(int port)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        try
        {
            await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithTimeout(TimeSpan.FromSeconds(5)).Build());
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    // The publisher's own check: trust exactly the test CA, and only for the right name.
    private static bool PublishingTrust(X509Certificate? cert, X509Chain? presented, System.Net.Security.SslPolicyErrors errors, X509Certificate2Collection ca) =>
        MqttConnectOptionsFactory.ValidateAgainstCa(cert, presented, errors, ca);

    // Null when the connection was accepted (the test then fails), else why it was refused.
    private static async Task<string?> RefusedAsync(Func<Task<IMqttClient>> connect)
    {
        try
        {
            using var c = await connect();
            return null;
        }
        catch (Exception e) when (e is MQTTnet.Exceptions.MqttCommunicationException or MQTTnet.Adapter.MqttConnectingFailedException or OperationCanceledException)
        {
            return e.Message;
        }
    }
}
