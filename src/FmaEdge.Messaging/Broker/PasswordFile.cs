using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace FmaEdge.Messaging.Broker;

/// <summary>Users and salted password hashes in mosquitto's password file format, so one file serves the embedded broker
/// and mosquitto alike: a line per user, <c>user:$7$iterations$salt$hash</c> (PBKDF2-HMAC-SHA512, base64 salt and hash,
/// as mosquitto_passwd writes them); mosquitto's older <c>$6$salt$hash</c> (SHA-512 of password and salt) is read too.
/// Blank lines and lines starting with '#' are ignored. Immutable once loaded; thread-safe.</summary>
public sealed class PasswordFile
{
    /// <summary>PBKDF2 iterations of hashes written here (OWASP's figure for PBKDF2-HMAC-SHA512); mosquitto_passwd's
    /// default is 101. Verifying one costs about 0.1 s on one core: once per connection.</summary>
    public const int DefaultIterations = 210_000;

    private const int SaltBytes = 12;
    private const int HashBytes = 64;
    private readonly Dictionary<string, string> _hashes;

    private PasswordFile(Dictionary<string, string> hashes) => _hashes = hashes;

    /// <summary>User names in the file.</summary>
    public IReadOnlyCollection<string> Users => _hashes.Keys;

    /// <summary>Reads <paramref name="path"/>; throws <see cref="FormatException"/> naming the line of anything that is
    /// not a user with a hash this class can verify.</summary>
    public static PasswordFile Load(string path)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        var lines = File.ReadAllLines(path);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || !IsKnownHash(line[(colon + 1)..]))
            {
                throw new FormatException($"{path}:{i + 1}: not 'user:$7$iterations$salt$hash' (write it with fma-edge broker passwd or mosquitto_passwd)");
            }

            hashes[line[..colon]] = line[(colon + 1)..];
        }

        return new PasswordFile(hashes);
    }

    /// <summary>True when <paramref name="user"/> is in the file and <paramref name="password"/> is theirs. Compares in
    /// constant time.</summary>
    public bool Verify(string? user, string? password)
    {
        if (user is null || password is null || !_hashes.TryGetValue(user, out var stored))
        {
            return false;
        }

        var parts = stored.Split('$');
        var secret = Encoding.UTF8.GetBytes(password);
        if (parts[1] == "7")
        {
            var salt = Convert.FromBase64String(parts[3]);
            var expected = Convert.FromBase64String(parts[4]);
            var actual = Rfc2898DeriveBytes.Pbkdf2(secret, salt, int.Parse(parts[2], CultureInfo.InvariantCulture), HashAlgorithmName.SHA512, expected.Length);
            return CryptographicOperations.FixedTimeEquals(actual, expected);
        }

        var salt6 = Convert.FromBase64String(parts[2]);
        var digest = SHA512.HashData([.. secret, .. salt6]);
        return CryptographicOperations.FixedTimeEquals(digest, Convert.FromBase64String(parts[3]));
    }

    /// <summary>The line for <paramref name="user"/> with a new random salt: <c>user:$7$iterations$salt$hash</c>.</summary>
    public static string HashLine(string user, string password, int iterations = DefaultIterations)
    {
        CheckUser(user);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA512, HashBytes);
        return string.Create(CultureInfo.InvariantCulture, $"{user}:$7${iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}");
    }

    /// <summary>Adds or replaces <paramref name="user"/> in the file at <paramref name="path"/> (created when missing),
    /// keeping every other line; written to a temporary file and renamed, with mode 0600 on Unix.</summary>
    public static void SetUser(string path, string user, string password, int iterations = DefaultIterations)
    {
        var line = HashLine(user, password, iterations);
        var lines = File.Exists(path) ? File.ReadAllLines(path).ToList() : [];
        var at = lines.FindIndex(l => l.StartsWith(user + ":", StringComparison.Ordinal));
        if (at >= 0)
        {
            lines[at] = line;
        }
        else
        {
            lines.Add(line);
        }

        Write(path, lines);
    }

    private static void Write(string path, List<string> lines)
    {
        var tmp = path + ".tmp";
        File.WriteAllLines(tmp, lines);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Removes <paramref name="user"/> from the file at <paramref name="path"/>; false when it was not there.</summary>
    public static bool RemoveUser(string path, string user)
    {
        CheckUser(user);
        var lines = File.Exists(path) ? File.ReadAllLines(path).ToList() : [];
        if (lines.RemoveAll(l => l.StartsWith(user + ":", StringComparison.Ordinal)) == 0)
        {
            return false;
        }

        Write(path, lines);
        return true;
    }

    /// <summary>Throws when <paramref name="user"/> cannot be a user name of the file (empty, ':' or a line break).</summary>
    public static void CheckUser(string user)
    {
        if (string.IsNullOrEmpty(user) || user.IndexOfAny([':', '\n', '\r']) >= 0)
        {
            throw new ArgumentException($"'{user}' is not a user name for a password file (empty, or contains ':' or a line break)", nameof(user));
        }
    }

    private static bool IsKnownHash(string hash)
    {
        var p = hash.Split('$');
        try
        {
            return p switch
            {
                ["", "7", var it, var salt, var h] => int.Parse(it, CultureInfo.InvariantCulture) > 0
                    && Convert.FromBase64String(salt).Length > 0 && Convert.FromBase64String(h).Length > 0,
                ["", "6", var salt, var h] => Convert.FromBase64String(salt).Length > 0 && Convert.FromBase64String(h).Length == 64,
                _ => false,
            };
        }
        catch (FormatException)
        {
            return false;
        }
        catch (OverflowException)
        {
            return false;
        }
    }
}
