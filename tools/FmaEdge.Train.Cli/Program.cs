Console.WriteLine("fma-train: not built yet");
return 0;
