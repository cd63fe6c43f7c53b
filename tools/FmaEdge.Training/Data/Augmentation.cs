using OpenCvSharp;

namespace FmaEdge.Training.Data;

/// <summary>Training augmentation on 8-bit RGB images, applied before the shared preprocessing normalises
/// them. Defect images have no canonical orientation, so flips and 90-degree turns are label-preserving.
/// Immutable; <see cref="Apply"/> is thread-safe (each call uses the caller's Random).</summary>
public sealed record AugmentationOptions
{
    public bool HorizontalFlip { get; init; } = true;
    public bool VerticalFlip { get; init; } = true;
    public bool Rotate90 { get; init; } = true;

    /// <summary>Brightness shift up to +-this fraction of full scale (0 = off).</summary>
    public double Brightness { get; init; } = 0.1;

    /// <summary>Contrast factor in [1-c, 1+c] (0 = off).</summary>
    public double Contrast { get; init; } = 0.1;

    [System.Text.Json.Serialization.JsonIgnore]
    public bool Any => HorizontalFlip || VerticalFlip || Rotate90 || Brightness > 0 || Contrast > 0;

    public static AugmentationOptions None { get; } = new() { HorizontalFlip = false, VerticalFlip = false, Rotate90 = false, Brightness = 0, Contrast = 0 };

    public void Validate()
    {
        if (Brightness is < 0 or > 1 || Contrast is < 0 or > 1)
        {
            throw new ArgumentException("brightness and contrast must be in 0..1");
        }
    }

    /// <summary>Returns a new augmented image, or null when this draw changes nothing (use the input as is).
    /// Square inputs keep their size under 90-degree turns.</summary>
    public Mat? Apply(Mat rgb, Random rng)
    {
        // Draw every random number up front in a fixed order, so results do not depend on which options are on.
        var h = rng.NextDouble() < 0.5;
        var v = rng.NextDouble() < 0.5;
        var turns = rng.Next(4);
        var b = ((rng.NextDouble() * 2) - 1) * Brightness * 255.0;
        var c = 1 + (((rng.NextDouble() * 2) - 1) * Contrast);
        h &= HorizontalFlip;
        v &= VerticalFlip;
        turns = Rotate90 ? turns : 0;
        var photometric = Brightness > 0 || Contrast > 0;
        if (!h && !v && turns == 0 && !photometric)
        {
            return null;
        }

        var cur = rgb;
        Mat? owned = null;
        void Step(Action<Mat, Mat> op)
        {
            var next = new Mat();
            op(cur, next);
            owned?.Dispose();
            owned = next;
            cur = next;
        }

        if (h && v)
        {
            Step((s, d) => Cv2.Flip(s, d, FlipMode.XY));
        }
        else if (h)
        {
            Step((s, d) => Cv2.Flip(s, d, FlipMode.Y));
        }
        else if (v)
        {
            Step((s, d) => Cv2.Flip(s, d, FlipMode.X));
        }

        if (turns > 0)
        {
            var code = turns switch { 1 => RotateFlags.Rotate90Clockwise, 2 => RotateFlags.Rotate180, _ => RotateFlags.Rotate90Counterclockwise };
            Step((s, d) => Cv2.Rotate(s, d, code));
        }

        if (photometric)
        {
            // Contrast around mid-grey, then brightness; ConvertTo saturates to 0..255.
            Step((s, d) => s.ConvertTo(d, MatType.CV_8UC3, c, b + (128 * (1 - c))));
        }

        return owned;
    }
}
