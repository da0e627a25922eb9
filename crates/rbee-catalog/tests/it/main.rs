//! The on-disk format: records decode without panics, with clear errors and their invariants
//! kept (bounded property tests), and catalogs written by the current layout are still found.

mod layout;
mod record;

/// Makes the references the tests write parse (binaries register every vendor at start).
fn register() {
    use rbee_artifact::register_reference;
    register_reference::<rbee_vendor_huggingface::HfRef>();
    register_reference::<rbee_vendor_github::GhRef>();
    register_reference::<rbee_vendor_local::LocalRef>();
    register_reference::<rbee_vendor_url::UrlRef>();
    register_reference::<rbee_vendor_ollama::OllamaRef>();
}
