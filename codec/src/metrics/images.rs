//! Loading benchmark images and preparing HR/LR pairs (protocol of ../shared/README.md).
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::color::Plane;
use super::imresize::downscale;
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// One line, since binaries print errors as a single line.
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}

/// Decode an image as 8-bit RGB; grayscale is replicated to the three channels
/// (Set14's bridge), alpha dropped, 16-bit scaled to 8-bit.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    load_hr(path).map(|(img, _)| img)
}

/// [`load_rgb`] plus the plane the classic MATLAB evaluation measures this
/// image on: [`Plane::Gray`] when the file has a single channel, [`Plane::Y`]
/// otherwise (see [`Plane::Gray`] for when to use it). Set14's man.png is
/// stored as RGB with equal channels, so it is measured on Y either way.
pub fn load_hr(path: &Path) -> Result<(RgbImage, Plane)> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::file(path, format!("cannot open image: {}", one_line(e))))?
        .with_guessed_format()
        .map_err(|e| Error::file(path, format!("cannot read image: {}", one_line(e))))?;
    let img = reader.decode().map_err(|e| {
        Error::file(
            path,
            format!("not a readable PNG, JPEG or BMP image: {}", one_line(e)),
        )
    })?;
    let plane = if img.color().has_color() {
        Plane::Y
    } else {
        Plane::Gray
    };
    Ok((img.to_rgb8(), plane))
}

/// The PNG/JPEG/BMP files of `dir` (not recursive), sorted by file name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::file(
            dir,
            format!(
                "cannot read directory (expected a directory of PNG, JPEG or BMP images): {}",
                one_line(e)
            ),
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::file(dir, format!("cannot list directory: {}", one_line(e))))?
            .path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)));
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::file(
            dir,
            "no images found (expected .png, .jpg, .jpeg or .bmp files)",
        ));
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// MATLAB `modcrop`: keep the top-left corner whose sides are multiples of `scale`.
pub fn modcrop(img: &RgbImage, scale: usize) -> RgbImage {
    let s = scale.max(1) as u32;
    let (w, h) = (
        img.width() - img.width() % s,
        img.height() - img.height() % s,
    );
    image::imageops::crop_imm(img, 0, 0, w, h).to_image()
}

/// The benchmark LR of an already-modcropped HR: MATLAB `imresize(hr, 1/scale, 'bicubic')`.
pub fn make_lr(hr: &RgbImage, scale: usize) -> RgbImage {
    downscale(hr, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modcrop_keeps_top_left() {
        let img = RgbImage::from_fn(10, 7, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = modcrop(&img, 3);
        assert_eq!(c.dimensions(), (9, 6));
        assert_eq!(c.get_pixel(8, 5).0, [8, 5, 0]);
        assert_eq!(modcrop(&img, 1).dimensions(), (10, 7));
    }

    #[test]
    fn make_lr_size() {
        assert_eq!(make_lr(&RgbImage::new(12, 8), 4).dimensions(), (3, 2));
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = list_images(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&dir.path().display().to_string()) && e.contains("no images found"),
            "{e}"
        );
        let missing = dir.path().join("nope");
        let e = list_images(&missing).unwrap_err().to_string();
        assert!(
            e.contains("nope") && e.contains("cannot read directory") && !e.contains('\n'),
            "{e}"
        );

        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let e = load_rgb(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.png") && !e.contains('\n'), "{e}");
        let e = load_rgb(&missing).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("cannot open"), "{e}");
    }

    #[test]
    fn lists_sorted_images_and_replicates_grey() {
        let dir = tempfile::tempdir().unwrap();
        let grey = image::GrayImage::from_pixel(3, 2, image::Luma([77]));
        grey.save(dir.path().join("b.png")).unwrap();
        RgbImage::new(2, 2).save(dir.path().join("a.BMP")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let files = list_images(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.BMP", "b.png"]);
        let (rgb, plane) = load_hr(&files[1]).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert!(rgb.pixels().all(|p| p.0 == [77, 77, 77]));
        assert_eq!(plane, Plane::Gray);
        assert_eq!(load_hr(&files[0]).unwrap().1, Plane::Y);
    }
}
