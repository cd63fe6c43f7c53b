// The daemon and its tests target Linux (systemd, Unix sockets, inotify).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
