//! Checks of the machine under a plan: images podman lacks, the GPU driver for a unit
//! that asks for GPU memory.

use crate::support::objects::plan;
use prometheus_stack::doctor::{check_gpu, check_images, Finding};

/// One image loaded (busybox, built by the support helper), one that is not.
#[tokio::test]
async fn an_image_podman_does_not_have_is_named_with_its_unit() {
    let present = crate::support::gpu::busybox_image();
    let p = plan(&format!(
        r#"
[stack]
data_dir = "/tmp/pstest-doctor-images"
[services.here]
runtime = "podman"
image = "{present}"
[services.gone]
runtime = "podman"
image = "localhost/prometheus-stack-doctor-missing:1"
"#
    ));
    assert_eq!(
        check_images(&p, "podman").await,
        vec![Finding::error(
            "images",
            "image localhost/prometheus-stack-doctor-missing:1 (unit gone) is not loaded in podman",
            "prometheus-stack bundle import BUNDLE.tar (the bundle made with `bundle create`), or `podman load` the image",
        )]
    );
}

/// A unit with a GPU memory policy and no NVML library to load: the driver is missing.
#[test]
fn a_unit_asking_for_gpu_memory_without_a_driver_is_a_problem() {
    let p = plan(
        r#"
[stack]
data_dir = "/tmp/pstest-doctor-gpu"
[services.llm]
command = ["sleep", "1000"]
gpu = { min_free = "8GiB" }
[services.web]
command = ["sleep", "1000"]
"#,
    );
    let lib = std::path::Path::new("/nonexistent/libnvidia-ml.so.1");
    let f = check_gpu(&p, Some(lib));
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].message.starts_with(
            "unit llm asks for the GPU but the NVIDIA driver does not answer: /nonexistent/libnvidia-ml.so.1"
        ) && f[0].message.ends_with("(is the NVIDIA driver installed?)"),
        "{f:?}"
    );
    assert_eq!(f[0].fix, "install the NVIDIA driver (and nvidia-container-toolkit for podman units) and reboot, or remove `gpu` from those units");
    let no_gpu =
        plan("[stack]\ndata_dir = \"/tmp/x\"\n[services.web]\ncommand = [\"sleep\", \"1\"]\n");
    assert_eq!(
        check_gpu(&no_gpu, Some(lib)),
        vec![],
        "no unit asks: NVML is not even tried"
    );
}
