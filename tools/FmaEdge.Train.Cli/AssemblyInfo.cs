// FmaEdge.Train.Cli: see the project Description.
