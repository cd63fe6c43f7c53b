FmaEdge.Training.Native.TorchNative.EnsureLoaded();
Console.WriteLine("torch ok");
return 0;
