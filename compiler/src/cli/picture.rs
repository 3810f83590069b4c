//! Pictures in and out: a PNG or JPEG read as a network's input (its
//! channels, pixels scaled to [0, 1] as IDX pixels are), and RGB PNGs
//! written (heat maps, feature maps).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use convc_runtime::train::data::{self, Dataset};
use png::{BitDepth, ColorType, Transformations};

use super::CliError;

/// A picture as `channels × height × width` values in [0, 1]: 8- or
/// 16-bit grey, grey + alpha, RGB, RGBA or palette, alpha dropped; grey
/// becomes three equal channels for an RGB network, colour its luminance
/// (ITU-R BT.601) for a grey one.
pub struct Picture {
    pub pixels: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG: &[u8] = &[0xff, 0xd8, 0xff];

/// The first bytes of `path` (fewer if it is shorter or unreadable).
fn head(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::new();
    let _ = File::open(path).map(|f| f.take(8).read_to_end(&mut head));
    head
}

/// A PNG or JPEG picture (by its signature) in `channels` channels.
pub fn read_picture(path: &Path, channels: usize) -> Result<Picture, CliError> {
    if head(path).starts_with(JPEG) { read_jpeg(path, channels) } else { read_png(path, channels) }
}

/// Unlabelled images from `path`: a PNG or JPEG picture (one image, in
/// `channels` channels), else every image of an IDX file. Their labels are
/// 0: only the network's outputs count.
pub fn images(path: &Path, channels: usize) -> Result<Dataset, CliError> {
    let head = head(path);
    if head.starts_with(PNG) || head.starts_with(JPEG) {
        let picture = read_picture(path, channels)?;
        return Ok(Dataset { images: picture.pixels, labels: vec![0], channels, height: picture.height, width: picture.width });
    }
    let (pixels, n, height, width) = data::read_images(path)?;
    Ok(Dataset { images: pixels.iter().map(|&p| p as f32 / 255.0).collect(), labels: vec![0; n], channels: 1, height, width })
}

/// Largest side of a picture read (a hostile header cannot ask for more).
const MAX_SIDE: usize = 16_384;

fn read_jpeg(path: &Path, channels: usize) -> Result<Picture, CliError> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let fail = |why: String| CliError::msg(format!("{}: {why}", path.display()));
    let file = File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB).set_max_width(MAX_SIDE).set_max_height(MAX_SIDE);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(BufReader::new(file), options);
    let rgb = decoder.decode().map_err(|e| fail(format!("not a JPEG picture convc can read: {e:?}")))?;
    let info = decoder.info().ok_or_else(|| fail("no JPEG header".into()))?;
    let (width, height) = (info.width as usize, info.height as usize);
    if rgb.len() < width * height * 3 {
        return Err(fail("the JPEG data is cut short".into()));
    }
    from_bytes(&rgb, 3, (height, width), channels).map_err(fail)
}

/// `channels × height × width` values from interleaved 8-bit pixels of
/// `per_pixel` bytes (grey, grey + alpha, RGB, RGBA).
fn from_bytes(bytes: &[u8], per_pixel: usize, (height, width): (usize, usize), channels: usize) -> Result<Picture, String> {
    let plane = height * width;
    let mut pixels = vec![0.0f32; channels * plane];
    for (i, px) in bytes.chunks_exact(per_pixel).enumerate().take(plane) {
        let v = |b: u8| b as f32 / 255.0;
        let rgb = if per_pixel >= 3 { [v(px[0]), v(px[1]), v(px[2])] } else { [v(px[0]); 3] };
        match channels {
            1 => pixels[i] = if per_pixel >= 3 { 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] } else { rgb[0] },
            3 => (0..3).for_each(|c| pixels[c * plane + i] = rgb[c]),
            n => return Err(format!("the network takes {n} channels; pictures give 1 (grey) or 3 (RGB)")),
        }
    }
    Ok(Picture { pixels, height, width })
}

fn read_png(path: &Path, channels: usize) -> Result<Picture, CliError> {
    let fail = |why: String| CliError::msg(format!("{}: {why}", path.display()));
    let file = File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| fail(format!("not a PNG picture convc can read: {e}")))?;
    let size = reader.output_buffer_size().ok_or_else(|| fail("the picture is too large".into()))?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| fail(format!("damaged PNG data: {e}")))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let per_pixel = match (frame.color_type, frame.bit_depth) {
        (ColorType::Grayscale, BitDepth::Eight) => 1,
        (ColorType::GrayscaleAlpha, BitDepth::Eight) => 2,
        (ColorType::Rgb, BitDepth::Eight) => 3,
        (ColorType::Rgba, BitDepth::Eight) => 4,
        (color, depth) => return Err(fail(format!("{color:?} at {depth:?} bits is not supported; save it as 8-bit grey or RGB"))),
    };
    if width.max(height) > MAX_SIDE {
        return Err(fail(format!("the picture is {height}×{width}; convc reads pictures up to {MAX_SIDE} pixels a side")));
    }
    from_bytes(&buf[..frame.buffer_size()], per_pixel, (height, width), channels).map_err(fail)
}

/// Write `rgb` (`height × width × 3` bytes) as an 8-bit RGB PNG, atomically.
pub fn write_png_rgb(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<(), CliError> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
        encoder.set_color(ColorType::Rgb);
        encoder.set_depth(BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| CliError::msg(format!("{}: {e}", path.display())))?;
        writer.write_image_data(rgb).map_err(|e| CliError::msg(format!("{}: {e}", path.display())))?;
    }
    convc_runtime::train::files::write_atomic(path, &bytes).map_err(|e| CliError::msg(format!("{}: cannot write: {e}", path.display())))
}

/// Tiles of `channels × height × width` values in [0, 1] (1 channel grey
/// or 3 RGB), each drawn `scale` pixels per value, laid out in a grid of
/// about square shape with a `scale`-wide grey gap: `(width, height, rgb)`.
pub fn grid(tiles: &[Vec<f32>], (channels, height, width): (usize, usize, usize), scale: usize) -> (usize, usize, Vec<u8>) {
    let n = tiles.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (tw, th) = (width * scale, height * scale);
    let (gw, gh) = (cols * tw + (cols + 1) * scale, rows * th + (rows + 1) * scale);
    let mut rgb = vec![96u8; gw * gh * 3];
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for (t, tile) in tiles.iter().enumerate() {
        let (x0, y0) = (scale + (t % cols) * (tw + scale), scale + (t / cols) * (th + scale));
        for y in 0..th {
            for x in 0..tw {
                let at = (y / scale) * width + x / scale;
                let value = |c: usize| tile[c * height * width + at];
                let px = if channels == 3 { [value(0), value(1), value(2)] } else { [value(0); 3] };
                let o = ((y0 + y) * gw + x0 + x) * 3;
                rgb[o..o + 3].copy_from_slice(&px.map(byte));
            }
        }
    }
    (gw, gh, rgb)
}

/// `values` stretched to [0, 1] (min → 0, max → 1; a constant map is 0.5).
pub fn normalised(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi > lo { values.iter().map(|v| (v - lo) / (hi - lo)).collect() } else { vec![0.5; values.len()] }
}
