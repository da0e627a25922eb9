//! The manifest an Ollama registry serves and Ollama's store keeps: a Docker v2 image
//! manifest whose layers are a model's files, told apart by media type.

use rbee_artifact::{Error, Result, Sha256Digest};
use serde::Deserialize;

use crate::digest::{BlobDigest, InvalidBlobDigest, digest_as_written};

/// What Ollama asks the registry for (`Accept`), and the manifest's own `mediaType`.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest read (real ones are under 2 KiB).
pub(crate) const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// The kind of file a layer holds, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKind {
    /// The model weights (GGUF): `application/vnd.ollama.image.model`.
    Model,
    /// A vision projector (GGUF, llama.cpp's `--mmproj`).
    Projector,
    /// A LoRA adapter (GGUF).
    Adapter,
    /// The prompt template (Go template text).
    Template,
    /// The default system prompt.
    System,
    /// Default sampling and runner parameters (JSON).
    Params,
    /// Example messages (JSON).
    Messages,
    /// The licence text.
    License,
    /// The image config (JSON: format, family, parameter count, quantization).
    Config,
}

impl LayerKind {
    /// The kind of a layer media type; `None` for kinds rbee does not fetch (safetensors
    /// tensors, draft models…).
    pub fn from_media_type(media_type: &str) -> Option<LayerKind> {
        Some(
            match media_type.strip_prefix("application/vnd.ollama.image.")? {
                "model" => LayerKind::Model,
                "projector" => LayerKind::Projector,
                "adapter" => LayerKind::Adapter,
                "template" => LayerKind::Template,
                "system" => LayerKind::System,
                "params" => LayerKind::Params,
                "messages" => LayerKind::Messages,
                "license" => LayerKind::License,
                _ => return None,
            },
        )
    }

    /// The file name this kind gets in the artifact's folder (`model.gguf`, `template`, …);
    /// the `n`th (from 1) of a kind that repeats gets `-n` before its extension.
    pub fn file_name(self, n: usize) -> String {
        let (stem, ext) = match self {
            LayerKind::Model => ("model", ".gguf"),
            LayerKind::Projector => ("projector", ".gguf"),
            LayerKind::Adapter => ("adapter", ".gguf"),
            LayerKind::Template => ("template", ""),
            LayerKind::System => ("system", ""),
            LayerKind::Params => ("params", ".json"),
            LayerKind::Messages => ("messages", ".json"),
            LayerKind::License => ("license", ""),
            LayerKind::Config => ("config", ".json"),
        };
        if n <= 1 {
            format!("{stem}{ext}")
        } else {
            format!("{stem}-{n}{ext}")
        }
    }

    /// How people call it.
    pub fn label(self) -> &'static str {
        match self {
            LayerKind::Model => "model",
            LayerKind::Projector => "projector",
            LayerKind::Adapter => "adapter",
            LayerKind::Template => "template",
            LayerKind::System => "system prompt",
            LayerKind::Params => "parameters",
            LayerKind::Messages => "messages",
            LayerKind::License => "license",
            LayerKind::Config => "config",
        }
    }
}

/// One layer of a parsed manifest: what it is, its digest and size, and its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// What the layer holds.
    pub kind: LayerKind,
    /// Its media type as written.
    pub media_type: String,
    /// The blob's SHA-256 (its address in the registry and in Ollama's store).
    pub digest: Sha256Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Its name in the artifact's folder.
    pub file_name: String,
}

/// A parsed, checked manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The config blob, then the layers rbee fetches, in the manifest's order.
    pub layers: Vec<Layer>,
    /// Media types of layers left out (rbee does not know what to do with them).
    pub skipped: Vec<String>,
    /// Every blob the manifest names, config and left-out layers included: what Ollama's
    /// store must hold before this manifest may be written there.
    pub blobs: Vec<BlobRef>,
    /// SHA-256 of the manifest's bytes: Ollama's model id (`ollama list` shows its first 12
    /// hex digits).
    pub digest: Sha256Digest,
}

/// One blob a manifest names, whether or not rbee fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Its media type as written.
    pub media_type: String,
    /// Its SHA-256; `None` when a left-out layer's digest is not `sha256:<64 hex>` (rbee cannot
    /// place such a blob, so such a manifest is never written to Ollama's store).
    pub digest: Option<Sha256Digest>,
    /// Its size in bytes.
    pub size: u64,
}

/// The wire shape (`schemaVersion`, `mediaType`, `config`, `layers`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: WireLayer,
    #[serde(default)]
    layers: Vec<WireLayer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLayer {
    #[serde(default)]
    media_type: String,
    #[serde(deserialize_with = "digest_as_written")]
    digest: std::result::Result<BlobDigest, InvalidBlobDigest>,
    size: u64,
}

impl Manifest {
    /// Parses and checks manifest bytes: schema 2, every digest `sha256:<64 hex>`, one model
    /// layer. `source` says where the bytes came from, for messages.
    pub fn parse(bytes: &[u8], source: &str) -> Result<Manifest> {
        let bad = |why: String| Error::Protocol {
            message: format!("the Ollama manifest from {source} is not usable: {why}"),
        };
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("it is not a Docker v2 image manifest ({e})")))?;
        if wire.schema_version != 2 {
            return Err(bad(format!(
                "schemaVersion is {}, expected 2",
                wire.schema_version
            )));
        }
        if let Some(media_type) = wire
            .media_type
            .as_deref()
            .filter(|m| !m.is_empty() && *m != MANIFEST_MEDIA_TYPE)
        {
            return Err(bad(format!(
                "its mediaType is {media_type:?}, expected {MANIFEST_MEDIA_TYPE}"
            )));
        }
        let digest_of =
            |digest: &std::result::Result<BlobDigest, InvalidBlobDigest>| -> Result<Sha256Digest> {
                match digest {
                    Ok(digest) => Ok(digest.0),
                    Err(invalid) => Err(bad(format!("layer digest {invalid}"))),
                }
            };
        let mut layers = vec![Layer {
            kind: LayerKind::Config,
            media_type: wire.config.media_type.clone(),
            digest: digest_of(&wire.config.digest)?,
            size: wire.config.size,
            file_name: LayerKind::Config.file_name(1),
        }];
        let mut skipped = Vec::new();
        let mut blobs = vec![BlobRef {
            media_type: wire.config.media_type.clone(),
            digest: Some(layers[0].digest),
            size: wire.config.size,
        }];
        let mut seen: Vec<LayerKind> = Vec::new();
        for layer in &wire.layers {
            let Some(kind) = LayerKind::from_media_type(&layer.media_type) else {
                skipped.push(layer.media_type.clone());
                blobs.push(BlobRef {
                    media_type: layer.media_type.clone(),
                    digest: digest_of(&layer.digest).ok(),
                    size: layer.size,
                });
                continue;
            };
            seen.push(kind);
            let n = seen.iter().filter(|k| **k == kind).count();
            let digest = digest_of(&layer.digest)?;
            blobs.push(BlobRef {
                media_type: layer.media_type.clone(),
                digest: Some(digest),
                size: layer.size,
            });
            layers.push(Layer {
                kind,
                media_type: layer.media_type.clone(),
                digest,
                size: layer.size,
                file_name: kind.file_name(n),
            });
        }
        match seen.iter().filter(|k| **k == LayerKind::Model).count() {
            1 => {}
            0 => {
                let kinds = if skipped.is_empty() {
                    "none".to_string()
                } else {
                    skipped.join(", ")
                };
                return Err(Error::Unsupported(format!(
                    "the Ollama model at {source} has no GGUF model layer (other layers: {kinds}); rbee fetches GGUF models only"
                )));
            }
            n => return Err(bad(format!("it has {n} model layers; expected one"))),
        }
        Ok(Manifest {
            layers,
            skipped,
            blobs,
            digest: Sha256Digest::of(bytes),
        })
    }

    /// The model (GGUF) layer.
    pub fn model(&self) -> &Layer {
        self.layers
            .iter()
            .find(|l| l.kind == LayerKind::Model)
            .expect("a parsed manifest has one model layer")
    }

    /// Bytes of every layer rbee fetches, config included (saturating).
    pub fn total_size(&self) -> u64 {
        self.layers
            .iter()
            .fold(0u64, |t, l| t.saturating_add(l.size))
    }
}

/// The name the manifest itself gets in the artifact's folder: the registry's bytes, as
/// Ollama's store keeps them.
pub const MANIFEST_FILE: &str = "manifest.json";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A manifest as registry.ollama.ai serves it (digests shortened to fit are not valid,
    /// so these are real-length).
    pub(crate) fn manifest_json(layers: &[(&str, Sha256Digest, u64)]) -> String {
        let config = Sha256Digest::of(b"config");
        let layers: Vec<String> = layers
            .iter()
            .map(|(media, digest, size)| {
                format!(r#"{{"mediaType":"{media}","digest":"sha256:{digest}","size":{size}}}"#)
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{config}","size":6}},"layers":[{}]}}"#,
            layers.join(",")
        )
    }

    #[test]
    fn layers_by_media_type_with_file_names() {
        let d = |s: &[u8]| Sha256Digest::of(s);
        let json = manifest_json(&[
            ("application/vnd.ollama.image.model", d(b"m"), 100),
            ("application/vnd.ollama.image.projector", d(b"p"), 10),
            ("application/vnd.ollama.image.template", d(b"t"), 5),
            ("application/vnd.ollama.image.license", d(b"l1"), 3),
            ("application/vnd.ollama.image.license", d(b"l2"), 3),
            ("application/vnd.ollama.image.params", d(b"pa"), 2),
            ("application/vnd.ollama.image.system", d(b"s"), 1),
            ("application/vnd.ollama.image.draft", d(b"x"), 1),
        ]);
        let m = Manifest::parse(json.as_bytes(), "test").unwrap();
        let names: Vec<&str> = m.layers.iter().map(|l| l.file_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "config.json",
                "model.gguf",
                "projector.gguf",
                "template",
                "license",
                "license-2",
                "params.json",
                "system"
            ]
        );
        assert_eq!(m.model().digest, d(b"m"));
        assert_eq!(m.skipped, ["application/vnd.ollama.image.draft"]);
        assert_eq!(m.digest, Sha256Digest::of(json.as_bytes()));
        assert_eq!(m.total_size(), 6 + 100 + 10 + 5 + 3 + 3 + 2 + 1);
    }

    #[test]
    fn a_left_out_layer_with_a_malformed_digest_does_not_refuse_the_manifest() {
        let d = Sha256Digest::of(b"m");
        let t = Sha256Digest::of(b"t");
        let json = manifest_json(&[
            ("application/vnd.ollama.image.model", d, 1),
            ("application/vnd.ollama.image.tensor", t, 1),
        ])
        .replace(&format!("sha256:{t}"), "sha256:short");
        let m = Manifest::parse(json.as_bytes(), "test").unwrap();
        assert_eq!(m.model().digest, d);
        let tensor = m.blobs.last().unwrap();
        assert_eq!(tensor.media_type, "application/vnd.ollama.image.tensor");
        assert_eq!(tensor.digest, None);
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        let d = Sha256Digest::of(b"m");
        for (json, says) in [
            ("not json".to_string(), "not a Docker v2 image manifest"),
            (
                manifest_json(&[("application/vnd.ollama.image.model", d, 1)])
                    .replace("\"schemaVersion\":2", "\"schemaVersion\":1"),
                "schemaVersion is 1",
            ),
            (
                manifest_json(&[("application/vnd.ollama.image.model", d, 1)])
                    .replace(&format!("sha256:{d}"), "sha256:abc"),
                "is not sha256:<64 hex digits>",
            ),
            (
                manifest_json(&[("application/vnd.ollama.image.tensor", d, 1)]),
                "no GGUF model layer",
            ),
            (
                manifest_json(&[
                    ("application/vnd.ollama.image.model", d, 1),
                    ("application/vnd.ollama.image.model", d, 1),
                ]),
                "2 model layers",
            ),
            (
                manifest_json(&[("application/vnd.ollama.image.model", d, 1)]).replace(
                    MANIFEST_MEDIA_TYPE,
                    "application/vnd.ollama.manifest.list.v2+json",
                ),
                "mediaType",
            ),
        ] {
            let e = Manifest::parse(json.as_bytes(), "test")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
