//! Datasets in the IDX format of MNIST (gzipped or not), validated against
//! the file size and the network's input shape. Pixels are scaled to [0, 1].

use std::fmt;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use crate::layer::Shape;

/// Where the Debian package `dataset-fashion-mnist` puts Fashion-MNIST.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// A problem with a data file, naming the file and the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    pub path: PathBuf,
    pub message: String,
    pub help: Option<String>,
}

impl DataError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), message: message.into(), help: None }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

/// Images with labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `len × channels × height × width` values in [0, 1].
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    /// 1 for IDX files; pictures may have 3.
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Dataset {
    /// Copy the images `indices` into one batch buffer.
    pub fn gather(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.clear();
        for &i in indices {
            out.extend_from_slice(self.image(i));
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * self.image_len()..(i + 1) * self.image_len()]
    }

    /// The first `n` examples (all if fewer).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.image_len());
    }

    /// Check that the images fit a network's input and the labels its
    /// classes; `path` names the images file in the error.
    pub fn check_fits(&self, images: &Path, labels: &Path, input: Shape, classes: usize) -> Result<(), DataError> {
        let path = images;
        let fits = matches!(input, Shape::Image { c, h, w } if c == self.channels && h == self.height && w == self.width);
        if !fits {
            let (c, h, w) = (self.channels, self.height, self.width);
            let larger = matches!(input, Shape::Image { h: nh, w: nw, .. } if h >= nh && w >= nw && (h, w) != (nh, nw));
            return Err(DataError::new(path, format!("images are {c}×{h}×{w}, but the network's input is {input}")).help(if larger {
                "resize them to the network's input, or score every window of the larger image with `convc scan`"
            } else {
                "use a dataset of the spec's input size, or change `input` in the spec's [network]"
            }));
        }
        if let Some((i, &label)) = self.labels.iter().enumerate().find(|&(_, &l)| l as usize >= classes) {
            return Err(DataError::new(
                labels,
                format!("label {label} (at index {i}) is out of range: the network has {classes} outputs, for labels 0 to {}", classes - 1),
            )
            .help("the last layer must have one unit per class"));
        }
        Ok(())
    }
}

/// The training or the test split of an MNIST-style directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }
}

/// Load `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from `dir`.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let (images, labels) = split_files(dir, split)?;
    load_files(&images, &labels)
}

/// The images and labels files of `split` in `dir` (gzipped or not).
pub fn split_files(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf), DataError> {
    if !dir.is_dir() {
        let mut e = DataError::new(dir, "no such data directory");
        if dir == Path::new(FASHION_MNIST_DIR) {
            e = e.help("install Fashion-MNIST with `apt-get install dataset-fashion-mnist`, or pass --data DIR");
        } else {
            e = e.help("pass --data with a directory holding train-images-idx3-ubyte.gz and the other MNIST-format files");
        }
        return Err(e);
    }
    Ok((find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?, find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?))
}

/// Load an images file and its labels file (IDX, gzipped or not).
pub fn load_files(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    let (pixels, n, height, width) = read_images(images)?;
    let labels_data = read_labels(labels)?;
    if labels_data.len() != n {
        return Err(DataError::new(labels, format!("{} labels for {n} images in {}", labels_data.len(), images.display()))
            .help("the images and labels files must come from the same split"));
    }
    Ok(Dataset { images: pixels.iter().map(|&p| p as f32 / 255.0).collect(), labels: labels_data, channels: 1, height, width })
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(DataError::new(&dir.join(format!("{stem}.gz")), "not found (nor without .gz)")
        .help("the directory must hold the four MNIST-format files"))
}

/// Read an IDX images file: `(pixels, count, height, width)`.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let (dims, data) = read_idx(path, 3)?;
    Ok((data, dims[0], dims[1], dims[2]))
}

/// Read an IDX labels file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(read_idx(path, 1)?.1)
}

/// Read and validate an unsigned-byte IDX file with `ndims` dimensions.
/// A gzipped file is decompressed as a stream that stops one byte past the
/// size its header declares: a small file that inflates to gigabytes
/// (a gzip bomb) costs what the header says, no more.
pub fn read_idx(path: &Path, ndims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    let mut reader = std::io::BufReader::new(file);
    let gzipped = reader.fill_buf().map_err(|e| DataError::new(path, format!("cannot read: {e}")))?.starts_with(&[0x1f, 0x8b]);
    let parsed = if gzipped { parse_idx(flate2::read::GzDecoder::new(reader), ndims) } else { parse_idx(reader, ndims) };
    parsed.map_err(|e| match e {
        IdxError::Format(message, help) => DataError::new(path, message).help(help),
        IdxError::Io(e) if gzipped => DataError::new(path, format!("corrupt gzip data: {e}")).help("re-download or re-install the file"),
        IdxError::Io(e) => DataError::new(path, format!("cannot read: {e}")),
    })
}

/// Why IDX data could not be read.
#[derive(Debug)]
pub enum IdxError {
    /// Not what an IDX file must be: `(message, help)`.
    Format(String, String),
    /// The bytes could not be read (or, gzipped, inflated).
    Io(std::io::Error),
}

/// Read IDX data from a stream, reading no more than its header declares
/// (and one byte more, to tell trailing bytes).
pub fn parse_idx(mut reader: impl Read, ndims: usize) -> Result<(Vec<usize>, Vec<u8>), IdxError> {
    let format = |message: String, help: String| Err(IdxError::Format(message, help));
    let kind = if ndims == 1 { "labels (idx1)" } else { "images (idx3)" };
    let mut header = vec![0u8; 4 + 4 * ndims];
    let got = read_up_to(&mut reader, &mut header)?;
    if got < 4 || header[0] != 0 || header[1] != 0 {
        return format(
            format!("not an IDX file: it does not start with the magic number 00 00 08 0{ndims}"),
            format!("expected MNIST-format {kind} data"),
        );
    }
    if header[2] != 0x08 {
        return format(
            format!("IDX element type 0x{:02x} is not supported", header[2]),
            "convc reads unsigned-byte (0x08) IDX files, as MNIST ships them".into(),
        );
    }
    if header[3] as usize != ndims {
        return format(
            format!("has {} dimensions, expected {ndims}", header[3]),
            format!("expected MNIST-format {kind} data; are images and labels swapped?"),
        );
    }
    if got < header.len() {
        return format(format!("truncated header: {got} bytes, expected {}", header.len()), "the file is cut short; re-download it".into());
    }
    let dims: Vec<usize> = header[4..].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).filter(|&n| n <= 1 << 34);
    let Some(expected) = expected else {
        return format(format!("dimensions {dims:?} are implausibly large"), "the header is corrupt".into());
    };
    // Grown as the bytes arrive, not reserved from the header's claim.
    let mut data = Vec::new();
    reader.take(expected as u64 + 1).read_to_end(&mut data).map_err(IdxError::Io)?;
    if data.len() != expected {
        let dims_text: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        let (what, found) = if data.len() < expected {
            ("truncated", format!("the file has {}", data.len()))
        } else {
            ("has trailing bytes", "the file has more".to_string())
        };
        return format(
            format!("{what}: the header says {} = {expected} bytes of data, {found}", dims_text.join("×")),
            "the file is damaged or not what its header says; re-download it".into(),
        );
    }
    Ok((dims, data))
}

/// Fill `buf` as far as the stream goes; the count read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, IdxError> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IdxError::Io(e)),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    #[test]
    fn parses_valid_files() {
        let (dims, data) = parse_idx(idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).as_slice(), 3).unwrap();
        assert_eq!(dims, [2, 2, 3]);
        assert_eq!(data.len(), 12);
    }

    #[test]
    fn rejects_bad_files_with_reasons() {
        let err = |bytes: &[u8], n| match parse_idx(bytes, n) {
            Err(IdxError::Format(message, _)) => message,
            other => panic!("{other:?}"),
        };
        assert!(err(&idx(&[2, 2, 3], &[0; 11]), 3).contains("truncated: the header says 2×2×3 = 12 bytes of data, the file has 11"));
        assert!(err(&idx(&[2, 2, 3], &[0; 13]), 3).contains("trailing bytes"));
        assert!(err(&idx(&[5], &[0; 5]), 3).contains("has 1 dimensions, expected 3"));
        assert!(err(b"PK\x03\x04", 1).contains("not an IDX file"));
        assert!(err(&[0, 0, 0x0d, 1, 0, 0, 0, 0], 1).contains("0x0d is not supported"));
        assert!(err(&[0, 0, 8, 3, 0, 0], 3).contains("truncated header"));
        assert!(err(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[]), 3).contains("implausibly large"));
    }

    /// A gzip bomb: a small file whose header declares 512 images of 28×28
    /// and which inflates to 64 MiB (a real bomb: gigabytes). Reading stops one byte past the
    /// declared size; only that much is inflated or held.
    #[test]
    fn a_gzip_bomb_is_stopped_at_the_declared_size() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&idx(&[512, 28, 28], &[])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
        let dir = std::env::temp_dir().join(format!("convc-bomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("train-images-idx3-ubyte.gz");
        std::fs::write(&path, &bomb).unwrap();
        // Counts the bytes the reader pulls from the decoder.
        struct Counted<R>(R, usize);
        impl<R: Read> Read for Counted<R> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        let mut counted = Counted(flate2::read::GzDecoder::new(bomb.as_slice()), 0);
        let Err(IdxError::Format(message, _)) = parse_idx(&mut counted, 3) else { panic!("the bomb was accepted") };
        assert!(message.contains("has trailing bytes: the header says 512×28×28 = 401408 bytes of data"), "{message}");
        assert!(counted.1 <= 16 + 401_408 + 1, "{} bytes inflated", counted.1);
        let err = read_idx(&path, 3).unwrap_err();
        assert!(err.to_string().contains("train-images-idx3-ubyte.gz: has trailing bytes"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
