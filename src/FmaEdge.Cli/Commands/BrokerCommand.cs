using System.CommandLine;
using System.Text;
using FmaEdge.Messaging;
using FmaEdge.Messaging.Broker;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge broker passwd FILE USER [--delete]</c>: adds, changes or removes a user of the embedded broker's
/// password file (mosquitto's format, so mosquitto reads it too). The password comes from standard input: typed twice
/// without echo on a terminal, else its first line (for scripts: <c>printf '%s\n' "$PW" | fma-edge broker passwd ...</c>).
/// Exit 0 written, 2 bad input (nothing written). <c>fma-edge broker serve</c>: the embedded broker alone, until Ctrl-C
/// (to try a password or ACL file, or to run a conformance suite against it).</summary>
public static class BrokerCommand
{
    public static Command Create(CliConsole console)
    {
        var file = new Argument<FileInfo>("file") { Description = "Password file (created when missing; mode 0600)" };
        var user = new Argument<string>("user") { Description = "User name" };
        var delete = new Option<bool>("--delete", "-D") { Description = "Remove the user instead" };
        var passwd = new Command("passwd", "Add or change a user of the embedded broker's password file (mosquitto's format); the password is read from stdin")
        {
            file, user, delete,
        };
        passwd.SetAction(parse => Passwd(console, parse.GetValue(file)!, parse.GetValue(user)!, parse.GetValue(delete)));
        var broker = new Command("broker", "Embedded MQTT broker tools");
        broker.Subcommands.Add(passwd);
        broker.Subcommands.Add(CreateServe(console));
        return broker;
    }

    private static Command CreateServe(CliConsole console)
    {
        var bind = new Option<string>("--bind") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port", DefaultValueFactory = _ => 1883 };
        var passwords = new Option<string?>("--password-file") { Description = "Users (mosquitto's format); required beyond loopback" };
        var acl = new Option<string?>("--acl-file") { Description = "Topic rules (mosquitto's acl_file format)" };
        var anonymous = new Option<bool?>("--allow-anonymous") { Description = "Accept clients without a user name" };
        var serve = new Command("serve", "Run the embedded MQTT broker alone until Ctrl-C (same options as Mqtt:Embedded)")
        {
            bind, port, passwords, acl, anonymous,
        };
        serve.SetAction(async (r, ct) =>
        {
            var options = new EmbeddedBrokerOptions
            {
                BindAddress = r.GetValue(bind)!,
                Port = r.GetValue(port),
                PasswordFile = r.GetValue(passwords),
                AclFile = r.GetValue(acl),
                AllowAnonymous = r.GetValue(anonymous),
            };
            EmbeddedBroker broker;
            try
            {
                broker = new EmbeddedBroker(options);
            }
            catch (ArgumentException x)
            {
                console.Error.WriteLine("broker serve: " + x.Message);
                return 2;
            }

            await using (broker)
            {
                await broker.StartAsync(ct);
                console.Out.WriteLine($"listening on {broker.EndPoint}; Ctrl-C to stop");
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                }
            }

            return 0;
        });
        return serve;
    }

    public static int Passwd(CliConsole console, FileInfo file, string user, bool delete)
    {
        try
        {
            PasswordFile.CheckUser(user);
            if (delete)
            {
                if (!PasswordFile.RemoveUser(file.FullName, user))
                {
                    console.Error.WriteLine($"broker passwd: {user} is not in {file.FullName}");
                    return 2;
                }

                console.Out.WriteLine($"removed {user} from {file.FullName}");
                return 0;
            }

            var password = ReadPassword(console);
            if (password is null)
            {
                return 2;
            }

            PasswordFile.SetUser(file.FullName, user, password);
            console.Out.WriteLine($"wrote {user} to {file.FullName} (PBKDF2-SHA512, {PasswordFile.DefaultIterations} iterations)");
            return 0;
        }
        catch (Exception x) when (x is ArgumentException or IOException or UnauthorizedAccessException or FormatException)
        {
            console.Error.WriteLine("broker passwd: " + x.Message);
            return 2;
        }
    }

    // The password, or null after saying why there is none.
    private static string? ReadPassword(CliConsole console)
    {
        string? password;
        if (console.InIsTerminal)
        {
            password = Prompt(console, "Password: ");
            if (password != Prompt(console, "Again: "))
            {
                console.Error.WriteLine("broker passwd: the passwords differ");
                return null;
            }
        }
        else
        {
            password = console.In.ReadLine();
        }

        if (string.IsNullOrEmpty(password))
        {
            console.Error.WriteLine("broker passwd: no password given (type it, or pipe it as the first line of stdin)");
            return null;
        }

        return password;
    }

    private static string Prompt(CliConsole console, string prompt)
    {
        console.Error.Write(prompt);
        var s = new StringBuilder();
        for (var k = Console.ReadKey(intercept: true); k.Key != ConsoleKey.Enter; k = Console.ReadKey(intercept: true))
        {
            if (k.Key == ConsoleKey.Backspace)
            {
                s.Length = Math.Max(0, s.Length - 1);
            }
            else if (!char.IsControl(k.KeyChar))
            {
                s.Append(k.KeyChar);
            }
        }

        console.Error.WriteLine();
        return s.ToString();
    }
}
