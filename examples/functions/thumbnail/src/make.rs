//! The thumbnail: decode a PNG, JPEG, GIF or WebP image, shrink it into a
//! bounding box keeping its aspect ratio, encode it as PNG.

use std::io::Cursor;

use image::{ImageError, ImageFormat, ImageReader, Limits};

/// The box a thumbnail must fit in, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub width: u32,
    pub height: u32,
}

impl Bounds {
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    pub fn square(side: u32) -> Self {
        Self::new(side, side)
    }
}

/// A finished thumbnail and what it was made from.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub source_width: u32,
    pub source_height: u32,
    /// `png`, `jpeg`, `gif` or `webp`.
    pub source_format: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThumbnailError {
    #[error("the object is not a PNG, JPEG, GIF or WebP image")]
    NotAnImage,
    #[error("the object is a {0} image; this function reads PNG, JPEG, GIF and WebP")]
    Unsupported(String),
    #[error("the object looks like a {format} image but cannot be decoded: {reason}")]
    Undecodable {
        format: &'static str,
        reason: String,
    },
    #[error("the image is too large to decode here: {0}")]
    TooLarge(String),
    #[error("encoding the thumbnail as PNG failed: {0}")]
    Encode(String),
}

/// Most bytes a decoded image may take. Instances get 256 MiB by default;
/// this leaves room for the input and the thumbnail beside it.
pub const MAX_DECODED_BYTES: u64 = 128 << 20;

/// The size of a `source` image shrunk to fit `bounds`, keeping its aspect
/// ratio (rounded to whole pixels, at least 1). Images already inside the
/// box keep their size: a thumbnail is never larger than its source.
pub fn fit(source: (u32, u32), bounds: Bounds) -> (u32, u32) {
    let (sw, sh) = (u64::from(source.0.max(1)), u64::from(source.1.max(1)));
    let (bw, bh) = (
        u64::from(bounds.width.max(1)),
        u64::from(bounds.height.max(1)),
    );
    if sw <= bw && sh <= bh {
        return (sw as u32, sh as u32);
    }
    // The side that meets the box first sets the scale: compare sw/bw with
    // sh/bh without division.
    let (w, h) = if sw * bh >= sh * bw {
        (bw, rounded_ratio(sh * bw, sw))
    } else {
        (rounded_ratio(sw * bh, sh), bh)
    };
    (w.max(1) as u32, h.max(1) as u32)
}

/// `n / d` rounded half up.
fn rounded_ratio(n: u64, d: u64) -> u64 {
    (2 * n + d) / (2 * d)
}

/// Decodes `input`, shrinks it to fit `bounds` and encodes the result as PNG.
pub fn make(input: &[u8], bounds: Bounds) -> Result<Thumbnail, ThumbnailError> {
    let mut reader = ImageReader::new(Cursor::new(input))
        .with_guessed_format()
        .expect("reading from memory cannot fail");
    let format = match reader.format() {
        None => return Err(ThumbnailError::NotAnImage),
        Some(f) => supported(f)?,
    };
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        ImageError::Limits(e) => ThumbnailError::TooLarge(e.to_string()),
        e => ThumbnailError::Undecodable {
            format,
            reason: e.to_string(),
        },
    })?;
    let (source_width, source_height) = (image.width(), image.height());
    let (width, height) = fit((source_width, source_height), bounds);
    let small = if (width, height) == (source_width, source_height) {
        image
    } else {
        image.thumbnail_exact(width, height)
    };
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(Thumbnail {
        png,
        width,
        height,
        source_width,
        source_height,
        source_format: format,
    })
}

fn supported(format: ImageFormat) -> Result<&'static str, ThumbnailError> {
    match format {
        ImageFormat::Png => Ok("png"),
        ImageFormat::Jpeg => Ok("jpeg"),
        ImageFormat::Gif => Ok("gif"),
        ImageFormat::WebP => Ok("webp"),
        other => Err(ThumbnailError::Unsupported(
            other
                .extensions_str()
                .first()
                .copied()
                .unwrap_or("unknown")
                .to_ascii_uppercase(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage};
    use proptest::prelude::*;

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn fits_by_the_side_that_meets_the_box_first() {
        assert_eq!(fit((300, 200), Bounds::square(128)), (128, 85));
        assert_eq!(fit((200, 300), Bounds::square(128)), (85, 128));
        assert_eq!(fit((400, 100), Bounds::new(128, 4096)), (128, 32));
        assert_eq!(fit((400, 100), Bounds::new(4096, 10)), (40, 10));
        assert_eq!(fit((10_000, 1), Bounds::square(128)), (128, 1));
    }

    #[test]
    fn never_enlarges() {
        assert_eq!(fit((50, 20), Bounds::square(128)), (50, 20));
        assert_eq!(fit((128, 128), Bounds::square(128)), (128, 128));
    }

    proptest! {
        #[test]
        fn fit_stays_in_the_box_and_keeps_the_aspect(
            sw in 1u32..20_000, sh in 1u32..20_000, bw in 1u32..=4096, bh in 1u32..=4096,
        ) {
            let (w, h) = fit((sw, sh), Bounds::new(bw, bh));
            prop_assert!(w >= 1 && h >= 1);
            prop_assert!(w <= bw.max(1) && h <= bh.max(1));
            prop_assert!(w <= sw && h <= sh);
            // Rounding moves the short side by at most half a pixel.
            let expect_h = f64::from(w) * f64::from(sh) / f64::from(sw);
            let expect_w = f64::from(h) * f64::from(sw) / f64::from(sh);
            prop_assert!((f64::from(h) - expect_h).abs() <= 0.5 + 1e-9 || h == 1
                || (f64::from(w) - expect_w).abs() <= 0.5 + 1e-9 || w == 1);
        }
    }

    #[test]
    fn png_and_jpeg_become_png_thumbnails() {
        for (format, name) in [(ImageFormat::Png, "png"), (ImageFormat::Jpeg, "jpeg")] {
            let t = make(&encoded(300, 200, format), Bounds::square(64)).unwrap();
            assert_eq!((t.width, t.height), (64, 43));
            assert_eq!(
                (t.source_width, t.source_height, t.source_format),
                (300, 200, name)
            );
            let back = image::load_from_memory_with_format(&t.png, ImageFormat::Png).unwrap();
            assert_eq!((back.width(), back.height()), (64, 43));
        }
    }

    /// CRC-32 (IEEE), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn an_image_too_large_to_decode_is_refused_before_decoding() {
        // A 1×1 PNG whose header claims 20000×20000 pixels (1.2 GB as RGB).
        let mut png = encoded(1, 1, ImageFormat::Png);
        assert_eq!(&png[12..16], b"IHDR");
        png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            make(&png, Bounds::square(64)).unwrap_err(),
            ThumbnailError::TooLarge(_)
        ));
    }

    #[test]
    fn what_is_not_a_readable_image_says_why() {
        assert_eq!(
            make(b"just some text", Bounds::square(64)).unwrap_err(),
            ThumbnailError::NotAnImage
        );
        let mut broken = encoded(30, 20, ImageFormat::Png);
        broken.truncate(40);
        assert!(matches!(
            make(&broken, Bounds::square(64)).unwrap_err(),
            ThumbnailError::Undecodable { format: "png", .. }
        ));
        // A BMP header: recognised, but not a format this function reads.
        assert_eq!(
            make(b"BM\x00\x00\x00\x00\x00\x00\x00\x00", Bounds::square(64)).unwrap_err(),
            ThumbnailError::Unsupported("BMP".into())
        );
    }
}
