//! The four-method store passes the same suite as every backend.

#[tokio::test]
async fn the_minimal_store_passes_the_shared_suite() {
    tus_core::store_suite!(example_custom_store::VecStore::default());
}
