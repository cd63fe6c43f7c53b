// FmaEdge.Daemon: see the project Description.
