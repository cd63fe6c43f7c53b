// FmaEdge.Training: see the project Description.
