using System.Diagnostics;
using FmaEdge.Core.Contract;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.Inference;
using FmaEdge.Vision;

namespace FmaEdge.Training.Evaluation;

/// <summary>Evaluates an exported model on a labelled dataset through the daemon's own path: ImageDecoder,
/// the manifest's ImagePreprocessor, OnnxClassifier and HierarchicalDecoder. Unreadable images are listed and
/// skipped. Stateless and thread-safe (each call opens its own session).</summary>
public static class ModelEvaluator
{
    /// <summary>Skip reason for an image whose model outputs are NaN or infinite.</summary>
    public const string NonFiniteOutput = "non-finite-output";

    /// <summary>Loads the model (validating it) and evaluates it on <paramref name="dataPath"/>: a folder tree
    /// ROOT/L1/.../leaf/*.png or a CSV manifest (path,leaf) labelled in the model's own tree.</summary>
    public static EvaluationResult Evaluate(string modelPath, string dataPath, EvaluationOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new EvaluationOptions();
        ThrowIfInvalid(options);
        using var classifier = OnnxClassifier.Load(modelPath, options.Inference);
        var data = LoadData(dataPath, classifier.Model.Tree);
        return Evaluate(classifier, data, options, cancellationToken);
    }

    /// <summary>Loads the model and evaluates it on an in-memory dataset (e.g. the trainer's stratified val split),
    /// which must be labelled in the model's tree.</summary>
    public static EvaluationResult Evaluate(string modelPath, LabeledDataset data, EvaluationOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new EvaluationOptions();
        ThrowIfInvalid(options);
        using var classifier = OnnxClassifier.Load(modelPath, options.Inference);
        return Evaluate(classifier, data, options, cancellationToken);
    }

    /// <summary>Evaluates an open classifier on a dataset labelled in the classifier's tree.</summary>
    public static EvaluationResult Evaluate(OnnxClassifier classifier, LabeledDataset data, EvaluationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        ArgumentNullException.ThrowIfNull(data);
        options ??= new EvaluationOptions();
        ThrowIfInvalid(options);
        if (!SameTree(data.Tree, classifier.Model.Tree))
        {
            throw new ArgumentException("the dataset is labelled in a different tree than the model's; load it with the model's tree", nameof(data));
        }

        var pre = classifier.Preprocessor;
        var len = pre.TensorLength;
        var batchSize = options.BatchSize;
        var images = data.Images;
        var buffer = new float[batchSize * len];
        var kept = new List<LabeledImage>(images.Count);
        var outputs = new List<float[][]>(images.Count);
        var skipped = new List<EvaluationSkip>();
        var classes = classifier.Model.Tree.LevelSizes;
        var parallel = new ParallelOptions
        {
            CancellationToken = cancellationToken,
            MaxDegreeOfParallelism = options.PreprocessThreads > 0 ? options.PreprocessThreads : Environment.ProcessorCount,
        };
        var total = Stopwatch.StartNew();
        var decodeTime = TimeSpan.Zero;
        var inferTime = TimeSpan.Zero;
        var batches = 0;
        for (var start = 0; start < images.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = images.Skip(start).Take(batchSize).ToArray();
            var failures = new EvaluationSkip?[chunk.Length];
            var sw = Stopwatch.StartNew();
            Parallel.For(0, chunk.Length, parallel, i =>
            {
                try
                {
                    using var rgb = ImageDecoder.LoadRgb(chunk[i].Path);
                    pre.Preprocess(rgb, buffer.AsSpan(i * len, len));
                }
                catch (ImageDecodeException e)
                {
                    failures[i] = new EvaluationSkip(chunk[i].Path, e.Reason, e.Message);
                }
            });

            // Compact the good images to the front of the buffer so the batch holds no holes.
            var n = 0;
            var batchImages = new List<LabeledImage>(chunk.Length);
            for (var i = 0; i < chunk.Length; i++)
            {
                if (failures[i] is { } f)
                {
                    skipped.Add(f);
                    continue;
                }

                if (n != i)
                {
                    buffer.AsSpan(i * len, len).CopyTo(buffer.AsSpan(n * len, len));
                }

                batchImages.Add(chunk[i]);
                n++;
            }

            decodeTime += sw.Elapsed;
            if (n > 0)
            {
                sw.Restart();
                var raw = classifier.Run(buffer, n);
                inferTime += sw.Elapsed;
                batches++;
                for (var i = 0; i < n; i++)
                {
                    var perLevel = new float[classes.Length][];
                    for (var l = 0; l < classes.Length; l++)
                    {
                        perLevel[l] = raw[l].AsSpan(i * classes[l], classes[l]).ToArray();
                    }

                    // A NaN/inf output cannot be decoded or calibrated on; list it like an unreadable image so one
                    // bad input does not sink the whole evaluation, and the report shows it.
                    if (perLevel.Any(o => o.Any(v => !float.IsFinite(v))))
                    {
                        skipped.Add(new EvaluationSkip(batchImages[i].Path, NonFiniteOutput, "the model produced NaN or infinite outputs for this image"));
                        continue;
                    }

                    outputs.Add(perLevel);
                    kept.Add(batchImages[i]);
                }
            }

            options.Progress?.Report((Math.Min(start + chunk.Length, images.Count), images.Count));
        }

        var result = EvaluationResult.FromOutputs(classifier.Model, kept, outputs, options.Decoding ?? classifier.Model.Manifest.Decoding);
        var seconds = total.Elapsed.TotalSeconds;
        return result with
        {
            ExecutionProvider = classifier.ExecutionProvider,
            DataPath = data.Root,
            Skipped = skipped,
            Timings = new EvaluationTimings(seconds, decodeTime.TotalSeconds, inferTime.TotalSeconds, batches)
            {
                ImagesPerSecond = seconds > 0 ? kept.Count / seconds : 0,
                InferenceMsPerImage = kept.Count > 0 ? inferTime.TotalMilliseconds / kept.Count : 0,
            },
        };
    }

    /// <summary>Reads a labelled dataset in <paramref name="tree"/>: a CSV manifest (path,leaf) when the path is a
    /// .csv file, else a folder tree whose leaf folders must be leaves of the tree (so indices match the model).</summary>
    public static LabeledDataset LoadData(string dataPath, CategoryTree tree)
    {
        ArgumentNullException.ThrowIfNull(tree);
        return File.Exists(dataPath) && string.Equals(Path.GetExtension(dataPath), ".csv", StringComparison.OrdinalIgnoreCase)
            ? DatasetLoader.LoadManifest(dataPath, tree)
            : DatasetLoader.ScanFolder(dataPath, tree);
    }

    private static bool SameTree(CategoryTree a, CategoryTree b) =>
        ReferenceEquals(a, b) || TaxonomyLoader.ToJson(a) == TaxonomyLoader.ToJson(b);

    private static void ThrowIfInvalid(EvaluationOptions options)
    {
        var errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("invalid evaluation options: " + string.Join("; ", errors), nameof(options));
        }
    }
}
