// fma-train: a thin shell; the commands live in Commands/, the trainer in FmaEdge.Training.
return FmaEdge.Train.Cli.Commands.TrainCli.Build().Parse(args).Invoke();
