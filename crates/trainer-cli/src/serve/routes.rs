//! `cnn serve`'s answers: each request's path to its reply, and the JSON of
//! the API (see the `serve` module docs for the documents).

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::assets::{CSS, JS, PAGE};
use super::reply::Reply;
use super::state::Shared;
use super::train_routes;
use crate::image_io::GreyImage;
use crate::predict::Predictor;
use crate::report::png_uri;
use crate::visualize::to_own_range;
use trainer::prepare::{drawing, prepare};

/// A request as read: method, path (without the query) and body.
pub(crate) struct Request {
    /// `GET`, `POST`, ...
    pub(crate) method: String,
    /// The path, without the query.
    pub(crate) path: String,
    /// The body, as long as its Content-Length said.
    pub(crate) body: Vec<u8>,
}

/// One worker's network (a copy of its own: the layers keep their outputs
/// in buffers) and the layers whose maps the page shows.
pub(crate) struct Handler {
    predictor: Predictor,
    shown: Vec<(usize, String)>,
}

impl Handler {
    /// A network built from the shared checkpoint.
    pub(crate) fn new(shared: &Shared) -> Result<Self> {
        let mut predictor = Predictor::new(shared.ckpt.network()?, &shared.ckpt, shared.norm)?;
        let shown = shown_layers(predictor.network());
        Ok(Handler { predictor, shown })
    }

    /// The reply to `req`.
    pub(crate) fn route(&mut self, req: &Request, shared: &Shared) -> Reply {
        if req.method == "GET" {
            if let Some(reply) = train_routes::route(&req.path, &shared.train) {
                return reply;
            }
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/") => Reply::ok("text/html; charset=utf-8", PAGE),
            ("GET", "/serve.css") => Reply::ok("text/css; charset=utf-8", CSS),
            ("GET", "/serve.js") => Reply::ok("text/javascript; charset=utf-8", JS),
            ("GET", "/api/model") => Reply::ok(JSON, shared.model.as_bytes()),
            ("POST", "/api/predict") => match parse_drawing(&req.body) {
                Ok(drawing) => json_reply(self.drawing(drawing)),
                Err(e) => Reply::error(400, e),
            },
            ("GET", path) if path.starts_with("/api/test/") => {
                self.test_image(&path["/api/test/".len()..], shared)
            }
            (_, "/" | "/serve.css" | "/serve.js" | "/api/model" | "/api/predict") => Reply::error(
                405,
                format!("{} is not allowed on {}", req.method, req.path),
            ),
            (_, path) => Reply::error(404, format!("nothing at {path}")),
        }
    }

    /// `POST /api/predict`: a drawing prepared as `cnn predict` prepares a PNG.
    fn drawing(&mut self, drawing: GreyImage) -> Result<Value> {
        let (w, h) = self.predictor.input_size();
        let prepared = prepare(drawing, w, h, true);
        look_inside(
            &mut self.predictor,
            &self.shown,
            &prepared.image,
            prepared.notes,
        )
    }

    /// `GET /api/test/N`: test image `index` as it is, with its index and
    /// true label; 404 without a test set or such an image.
    fn test_image(&mut self, index: &str, shared: &Shared) -> Reply {
        let Some(test) = &shared.test else {
            return Reply::error(404, "no test set: start `cnn serve` with --data DIR");
        };
        let Some(i) = index.parse::<usize>().ok().filter(|&i| i < test.len()) else {
            return Reply::error(
                404,
                format!(
                    "no test image `{index}`: they are numbered 0 to {}",
                    test.len() - 1
                ),
            );
        };
        let (w, h) = self.predictor.input_size();
        let image = GreyImage {
            width: w,
            height: h,
            pixels: test.image(i).to_vec(),
        };
        let note = format!("test image {i}, given to the network as it is (as `cnn eval` does)");
        let look = look_inside(&mut self.predictor, &self.shown, &image, vec![note]);
        json_reply(look.map(|mut v| {
            v["index"] = json!(i);
            v["truth"] = json!(test.label(i));
            v
        }))
    }
}

/// The Content-Type of the API's documents.
const JSON: &str = "application/json";

/// A JSON document, or a 500 saying what went wrong in making it.
fn json_reply(result: Result<Value>) -> Reply {
    match result {
        Ok(v) => Reply::ok(JSON, v.to_string()),
        Err(e) => Reply::error(500, format!("{e:#}")),
    }
}

/// The body of `POST /api/predict`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Drawing {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

/// A drawing from its JSON, every field checked; the error says what is wrong.
fn parse_drawing(body: &[u8]) -> Result<GreyImage, String> {
    let d: Drawing = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not a drawing {{\"width\": W, \"height\": H, \"pixels\": [W*H integers 0..=255]}}: {e}")
    })?;
    drawing(d.width, d.height, d.pixels).map_err(|e| format!("{e:#}"))
}

/// The layers whose outputs the page shows, with a title: each convolution
/// (after its ReLU, as `cnn visualize` shows it: [`layers::Network::maps_of_conv`]) and each
/// pooling layer.
fn shown_layers(net: &layers::Network) -> Vec<(usize, String)> {
    let layers = net.layers();
    let mut shown = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        if layer.kind() == "conv2d" {
            let last = net.maps_of_conv(i);
            let names: Vec<&str> = layers[i..=last].iter().map(|l| l.name()).collect();
            shown.push((last, names.join(" + ")));
        } else if layer.kind().ends_with("pool2d") {
            shown.push((i, layer.name().to_string()));
        }
    }
    shown
}

/// The probabilities (from [`Predictor::probabilities`], i.e.
/// `Network::forward`) and the feature maps of the `shown` layers for an
/// image of the network's input size.
fn look_inside(
    predictor: &mut Predictor,
    shown: &[(usize, String)],
    image: &GreyImage,
    notes: Vec<String>,
) -> Result<Value> {
    let probabilities = predictor.probabilities(image)?;
    let class = tensor::argmax(&probabilities);
    let input = predictor.input_tensor(image)?;
    let mut layers = Vec::new();
    for (index, name) in shown {
        let out = predictor
            .network()
            .forward_to(&input, *index)
            .map_err(|e| anyhow!("{e}"))?;
        let &[1, _, h, w] = out.shape() else {
            bail!(
                "layer {name} gives shape {:?}, not feature maps",
                out.shape()
            );
        };
        let values = out
            .as_slice()
            .ok_or_else(|| anyhow!("feature maps are not contiguous"))?;
        let maps = map_uris(values, w, h)?;
        layers.push(json!({"name": name, "width": w, "height": h, "maps": maps}));
    }
    Ok(json!({
        "class": class,
        "class_name": predictor.class_names().get(class),
        "probabilities": probabilities,
        "notes": notes,
        "input": png_uri(&image.to_png()?),
        "layers": layers,
    }))
}

/// Each `w` x `h` map in `values`, scaled to its own range, as a PNG `data:` URI.
fn map_uris(values: &[f32], w: usize, h: usize) -> Result<Vec<String>> {
    values
        .chunks_exact(w * h)
        .map(|m| {
            let pixels = to_own_range(m);
            let png = GreyImage {
                width: w,
                height: h,
                pixels,
            }
            .to_png()?;
            Ok(png_uri(&png))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawings_are_checked_field_by_field() {
        let ok = parse_drawing(br#"{"width": 2, "height": 1, "pixels": [0, 255]}"#).unwrap();
        assert_eq!((ok.width, ok.height, ok.pixels), (2, 1, vec![0, 255]));
        for (body, expected) in [
            (
                &br#"{"width": 2, "height": 1, "pixels": [0]}"#[..],
                "pixels has 1 values; a 2x1 drawing has 2",
            ),
            (br#"{"width": 0, "height": 1, "pixels": []}"#, "width is 0"),
            (
                br#"{"width": 1, "height": 9999, "pixels": []}"#,
                "height is 9999",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [NaN]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": ["a"]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [256]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [-1]}"#,
                "not a drawing",
            ),
            (
                br#"{"width": 1, "height": 1, "pixels": [1], "x": 1}"#,
                "unknown field `x`",
            ),
            (b"", "not a drawing"),
        ] {
            let err = parse_drawing(body).unwrap_err();
            assert!(
                err.contains(expected),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_seed_network_shows_both_convolutions_and_both_poolings() {
        let net = trainer::config::TrainConfig::load("seed")
            .unwrap()
            .build_network()
            .unwrap();
        let names: Vec<String> = shown_layers(&net).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names[0].starts_with("conv1 + "), "{names:?}");
        assert!(names[2].starts_with("conv2 + "), "{names:?}");
    }
}
