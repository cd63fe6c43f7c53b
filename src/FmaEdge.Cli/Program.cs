Console.WriteLine("fma-edge: not built yet");
return 0;
