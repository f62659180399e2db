//! The sample bucket's object: a PNG drawn here, so the repository carries
//! no binary file and the `image` function has something real to shrink.

use anyhow::{Context, Result};

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 400;

/// A 640×400 RGB gradient with a few rings, encoded as PNG.
pub fn image() -> Result<Vec<u8>> {
    let mut pixels = Vec::with_capacity((WIDTH * HEIGHT * 3) as usize);
    let (cx, cy) = (WIDTH as f32 / 2.0, HEIGHT as f32 / 2.0);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            let ring = if (d as u32 / 24).is_multiple_of(2) {
                255
            } else {
                96
            };
            pixels.extend_from_slice(&[(x * 255 / WIDTH) as u8, (y * 255 / HEIGHT) as u8, ring]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("writing the PNG header")?;
    writer
        .write_image_data(&pixels)
        .context("encoding the sample image")?;
    writer.finish().context("finishing the PNG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_is_a_png_of_the_stated_size() {
        let bytes = super::image().unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (super::WIDTH, super::HEIGHT));
    }
}
