// FmaEdge.Messaging: see the project Description.
