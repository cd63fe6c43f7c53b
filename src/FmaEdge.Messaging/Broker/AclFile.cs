namespace FmaEdge.Messaging.Broker;

/// <summary>Topic access rules in mosquitto's <c>acl_file</c> format, so one file serves the embedded broker and
/// mosquitto alike:
/// <code>
/// topic read fma/+/status          # before any "user" line: anonymous clients
/// user floor
/// topic read fma/+/result          # this user (access: read, write, readwrite (default) or deny)
/// pattern write fma/%u/#           # every client; %u = user name, %c = client id
/// </code>
/// Anything not granted is refused; a matching <c>deny</c> wins over any grant. Read rules are checked for each message
/// a client would receive (a subscription to '#' delivers only what the client may read), write rules for each publish.
/// Immutable once loaded; thread-safe.</summary>
public sealed class AclFile
{
    private readonly List<Rule> _rules;

    private AclFile(List<Rule> rules) => _rules = rules;

    /// <summary>Parses <paramref name="path"/>; throws <see cref="FormatException"/> naming the line of anything it does
    /// not understand.</summary>
    public static AclFile Load(string path) => Parse(File.ReadAllLines(path), path);

    /// <summary>Parses the lines of an ACL file; <paramref name="name"/> names it in errors.</summary>
    public static AclFile Parse(IReadOnlyList<string> lines, string name = "acl")
    {
        var rules = new List<Rule>();
        string? user = null; // null: the anonymous section before the first "user" line
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var words = line.Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
            switch (words)
            {
                case ["user", var u]:
                    user = u;
                    break;
                case ["topic" or "pattern", var filter]:
                    rules.Add(new Rule(words[0] == "pattern", user, Access.ReadWrite, filter));
                    break;
                case ["topic" or "pattern", var access, var filter] when ParseAccess(access) is { } a:
                    rules.Add(new Rule(words[0] == "pattern", user, a, filter));
                    break;
                default:
                    throw new FormatException($"{name}:{i + 1}: '{line}' is not 'user NAME', 'topic [read|write|readwrite|deny] FILTER' or 'pattern [...] FILTER'");
            }
        }

        return new AclFile(rules);
    }

    /// <summary>May the client (<paramref name="user"/> null when anonymous) receive a message on <paramref name="topic"/>?</summary>
    public bool CanRead(string? user, string clientId, string topic) => Allowed(user, clientId, topic, Access.Read);

    /// <summary>May the client publish on <paramref name="topic"/>?</summary>
    public bool CanWrite(string? user, string clientId, string topic) => Allowed(user, clientId, topic, Access.Write);

    private bool Allowed(string? user, string clientId, string topic, Access wanted)
    {
        var granted = false;
        foreach (var r in _rules)
        {
            string filter;
            if (r.IsPattern)
            {
                // A pattern naming %u does not apply to anonymous clients (mosquitto does the same).
                if (user is null && r.Filter.Contains("%u", StringComparison.Ordinal))
                {
                    continue;
                }

                filter = r.Filter.Replace("%u", user, StringComparison.Ordinal).Replace("%c", clientId, StringComparison.Ordinal);
            }
            else if (r.User == user)
            {
                filter = r.Filter;
            }
            else
            {
                continue;
            }

            if (!Matches(filter, topic))
            {
                continue;
            }

            if (r.Access == Access.Deny)
            {
                return false;
            }

            granted |= (r.Access & wanted) != 0;
        }

        return granted;
    }

    /// <summary>MQTT topic filter matching: '+' one level, '#' (last) the rest including the parent level; a topic
    /// starting with '$' is not matched by a leading wildcard (MQTT 3.1.1 4.7.2).</summary>
    public static bool Matches(string filter, string topic)
    {
        if (topic.StartsWith('$') && (filter.StartsWith('+') || filter.StartsWith('#')))
        {
            return false;
        }

        var f = filter.Split('/');
        var t = topic.Split('/');
        for (var i = 0; i < f.Length; i++)
        {
            if (f[i] == "#")
            {
                return i == f.Length - 1;
            }

            if (i >= t.Length || (f[i] != "+" && f[i] != t[i]))
            {
                return false;
            }
        }

        return f.Length == t.Length;
    }

    private static Access? ParseAccess(string word) => word switch
    {
        "read" => Access.Read,
        "write" => Access.Write,
        "readwrite" => Access.ReadWrite,
        "deny" => Access.Deny,
        _ => null,
    };

    [Flags]
    private enum Access
    {
        Deny = 0,
        Read = 1,
        Write = 2,
        ReadWrite = Read | Write,
    }

    private sealed record Rule(bool IsPattern, string? User, Access Access, string Filter);
}
