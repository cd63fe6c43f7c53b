using FmaEdge.Cli;

// A thin shell: every command lives in FmaEdgeCli, the daemon in FmaEdge.Daemon.
return FmaEdgeCli.Run(args, CliConsole.Standard());
