using System.Security.Cryptography.X509Certificates;
using FmaEdge.Messaging.Contract;
using FmaEdge.Messaging.Publishing;
using FmaEdge.Messaging.Tests.Support;
using FmaEdge.TestSupport;
using MQTTnet;

namespace FmaEdge.Messaging.Tests.Publishing;

/// <summary>TLS (private CA, client certificate) and username/password against a real mosquitto.</summary>
public sealed class MqttPublisherSecurityTests(SecureBrokerFixture fixture) : IClassFixture<SecureBrokerFixture>
{
    private readonly TempFolder _dir = fixture.Dir;
    private readonly TestCertificates _certs = fixture.Certs;
    private readonly MosquittoBroker _broker = fixture.Broker;

    private MqttOptions Secure(string clientCert, string? key, string? certPassword = null)
    {
        var o = Samples.Options(_broker.Port, _dir.File($"outbox-{Guid.NewGuid():N}.db"), "secure-node");
        o.Username = TestCertificates.User;
        o.Password = TestCertificates.Password;
        o.Tls = new MqttTlsOptions { Enabled = true, CaFile = _certs.CaPem, ClientCertificateFile = clientCert, ClientKeyFile = key, ClientCertificatePassword = certPassword };
        return o;
    }

    private Task<TestSubscriber> SubscribeAsync() =>
        TestSubscriber.ConnectAsync(_broker.Host, _broker.Port, "fma/#", configure: b => b
            .WithCredentials(TestCertificates.User, TestCertificates.Password)
            .WithTlsOptions(t => t.UseTls().WithTrustChain([X509CertificateLoader.LoadCertificateFromFile(_certs.CaPem)])
                .WithCertificateValidationHandler(_ => true) // the subscriber is only the witness here
                .WithClientCertificates([X509CertificateLoader.LoadPkcs12FromFile(_certs.ClientPfx, TestCertificates.PfxPassword)])));

    [Theory]
    [InlineData("pem")]
    [InlineData("pfx")]
    public async Task Connect_TlsWithPrivateCaClientCertificateAndPassword_ResultArrives(string certFormat)
    {
        await using var sub = await SubscribeAsync();
        var options = certFormat == "pem"
            ? Secure(_certs.ClientPem, _certs.ClientKey)
            : Secure(_certs.ClientPfx, null, TestCertificates.PfxPassword);
        await using var pub = new MqttPublisher(options, "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        await Wait.ConnectedAsync(pub);
        var id = pub.CommitResult(Samples.Result("cam", 0)).MessageId;
        await sub.WaitUntilAsync(m => m.Any(x => x.MessageId == id), TimeSpan.FromSeconds(20), "result over TLS");
        Assert.Contains("(tls)", pub.Health.Broker, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_WrongPassword_StaysDisconnectedKeepsResultsAndSaysWhy()
    {
        var o = Secure(_certs.ClientPem, _certs.ClientKey);
        o.Password = "wrong";
        await using var pub = new MqttPublisher(o, "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        pub.CommitResult(Samples.Result("cam", 0));
        await Wait.UntilAsync(() => pub.Health.LastError is not null, TimeSpan.FromSeconds(20), "an error");
        var h = pub.Health;
        Assert.NotEqual(ConnectionState.Connected, h.State);
        Assert.Contains("connect", h.LastError, StringComparison.OrdinalIgnoreCase);
        Assert.Matches("(?i)BadUserNameOrPassword|NotAuthorized", h.LastError);
        Assert.Equal(1, h.Outbox.Depth);
    }

    [Fact]
    public async Task Connect_BrokerCertificateFromUnknownCa_IsRefused()
    {
        using var other = new TempFolder("otherca");
        var otherCerts = await TestCertificates.CreateAsync(other.Path);
        var o = Secure(_certs.ClientPem, _certs.ClientKey);
        o.Tls.CaFile = otherCerts.CaPem;
        await using var pub = new MqttPublisher(o, "0.1.0");
        await pub.StartAsync(CancellationToken.None);
        await Wait.UntilAsync(() => pub.Health.LastError is not null, TimeSpan.FromSeconds(20), "an error");
        await Task.Delay(300);
        Assert.Equal(0, pub.Health.Connects);
        Assert.NotEqual(ConnectionState.Connected, pub.State);
    }
}

/// <summary>One PKI and one TLS + password mosquitto shared by the security tests (key generation is slow).</summary>
public sealed class SecureBrokerFixture : IAsyncLifetime
{
    public TempFolder Dir { get; } = new("tls");

    public TestCertificates Certs { get; private set; } = null!;

    public MosquittoBroker Broker { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Certs = await TestCertificates.CreateAsync(Dir.Path);
        Broker = await MosquittoBroker.StartNewAsync(new MosquittoSettings(Certs.PasswordFile, Certs.CaPem, Certs.ServerPem, Certs.ServerKey,
            RequireClientCertificate: true));
    }

    public async Task DisposeAsync()
    {
        await Broker.DisposeAsync();
        Dir.Dispose();
    }
}
