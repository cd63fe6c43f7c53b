// FmaEdge.Cli: see the project Description.
