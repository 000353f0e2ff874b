"""Q-SCI studio in the browser: layout and event wiring only.

Handlers live in `ui/` (`ui.handlers` pure, `ui.events` the Gradio glue); the models, solvers and
file formats live in `qsci/`. `python app.py` serves on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT
(defaults 127.0.0.1:7860), which is also how Hugging Face Spaces starts it.
"""

from __future__ import annotations

import os

from qsci.threads import prefer_passive_omp_threads

prefer_passive_omp_threads()  # before gradio or the models load torch (qsci/threads.py says why)

MAX_FILE_SIZE = os.environ.get("QSCI_APP_MAX_FILE_SIZE", "200mb")  # Gradio refuses larger uploads
QUEUE_SIZE = 16
CONCURRENCY = 1  # reconstructions are CPU-bound; the 2-core demo runs one at a time
HEAVY = "reconstruct"  # one concurrency group for every event that reconstructs (UI and API alike)

INTRO = """# Q-SCI studio — low-bit video snapshot compressive imaging
One coded snapshot holds several video frames. Pick a scene (or upload / simulate your own),
choose reconstruction methods — GAP-TV and quantized Q-SCI networks at different bit widths —
and compare them frame by frame, with errors, videos, scores and cost."""


def build_demo():
    """The Blocks app; built on demand so importing this module stays cheap."""
    import gradio as gr

    from qsci.synthetic import list_embedded_scenes
    from ui import events, examples, handlers, panel, status

    scenes, scene_default = handlers.scene_choices()
    method_choices, method_default, _ = handlers.method_choices(with_table=False)
    clips = list_embedded_scenes()
    example_rows = examples.listed()

    with gr.Blocks(title="Q-SCI studio", delete_cache=(3600, 3600), fill_width=True) as demo:
        gr.Markdown(INTRO)
        run_state = gr.State(None, time_to_live=3600)
        with gr.Row():
            with gr.Column(scale=2, min_width=380):
                methods = gr.CheckboxGroup(method_choices, value=method_default, label="Methods",
                                           info="Each shows its benchmark PSNR and bits; every selected method "
                                                "runs on the same input.", elem_id="methods")
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Benchmark scenes", id="scenes"):
                        scene = gr.Dropdown(scenes, value=scene_default, label="Scene",
                                            info="Embedded clips are always here; benchmark and real-camera "
                                                 "files are fetched on demand.", elem_id="scene")
                        scene_note = gr.Markdown(handlers.scene_note(scene_default), elem_id="scene-note")
                        scene_which = gr.Radio(["all", "first only (quick)"], value="all",
                                               label="Measurements to reconstruct", elem_id="scene-which")
                        scene_btn = gr.Button("Reconstruct scene", variant="primary", elem_id="run-scene")
                    with gr.Tab("Upload", id="upload"):
                        with gr.Row():
                            up_meas = gr.File(label="Measurement (.mat, .npy, .npz, .tif, .png)", elem_id="up-meas")
                            up_mask = gr.File(label="Mask (T planes, same size)", elem_id="up-mask")
                            up_gt = gr.File(label="Ground truth (optional: frames or video)", elem_id="up-gt")
                        up_info = gr.Markdown("Upload a measurement and its mask: what was read from each "
                                              "file shows here as soon as it arrives.", elem_id="up-info")
                        if example_rows:
                            gr.Examples(example_rows, [up_meas, up_mask, up_gt], label="Example uploads (made by "
                                        "this project from embedded clips: with and without ground truth)",
                                        example_labels=["coins, 2 × 64×64, with ground truth",
                                                        "camera, 128×128, no ground truth"][:len(example_rows)])
                        with gr.Row():
                            up_index = gr.Dropdown(["all"], value="all", label="Measurement in the file")
                            up_scaling = gr.Checkbox(False, label="Real-camera 8-bit scaling (meas / 255 × CR / 2)",
                                                     info="For the authors' real CACTI snapshots (with their camera's "
                                                          "mask, real_mask.mat, at the snapshot's CR): the scaling "
                                                          "they apply. 0..255 simulated files are detected and rescaled with a notice.")
                        up_btn = gr.Button("Reconstruct upload", variant="primary", elem_id="run-upload")
                    with gr.Tab("Simulate your own", id="simulate"):
                        with gr.Row():
                            sim_video = gr.File(label="Short video or frame stack (optional)", elem_id="sim-video")
                            with gr.Column():
                                sim_clip = gr.Dropdown(clips, value=clips[0] if clips else None,
                                                       label="…or an embedded clip", elem_id="sim-clip")
                                sim_size = gr.Radio([64, 128, 256], value=256, label="Clip size (embedded clips)",
                                                    elem_id="sim-size")
                        sim_source = gr.HTML(status.note("Using the embedded clip (upload a video above to use "
                                                         "your own instead)."), elem_id="sim-source")
                        with gr.Row():
                            sim_mask = gr.Radio(["random", "quantized_sci"], value="random", label="Mask")
                            sim_seed = gr.Number(0, precision=0, label="Mask / noise seed")
                        with gr.Row():
                            sim_cr = gr.Slider(2, 50, value=8, step=1, label="Compression ratio (frames per snapshot)")
                            sim_noise = gr.Slider(0, 0.1, value=0, step=0.005, label="Read noise σ")
                        sim_btn = gr.Button("Simulate and reconstruct", variant="primary", elem_id="run-simulate")
                stop_btn = gr.Button("Stop the running reconstruction", variant="stop", size="sm", elem_id="stop")
                status_line = gr.HTML(status.idle(), elem_id="status")
                with gr.Accordion("Benchmark score, bits, BOPs and weights of every method", open=True):
                    method_table = gr.Markdown("Counting BOPs…", elem_id="method-note")

        scene_info = gr.Markdown(elem_id="scene-info")
        inputs_view = gr.Gallery(label="Coded measurement and mask", columns=5, height=300,
                                 object_fit="contain", format="png", fit_columns=False, elem_id="inputs-view")
        frame = gr.Slider(0, 1, value=0, step=1, label="frame (all methods)", elem_id="frame")
        results = gr.HTML("", elem_id="results", js_on_load=panel.JS_ON_LOAD, min_height=40)
        summary = gr.Dataframe(headers=handlers.SUMMARY_HEADERS, label="Scores per method on this input "
                               "(mean over frames)", interactive=False, elem_id="summary")
        plot_ops = gr.Plot(label="PSNR vs compute", show_label=False, elem_id="plot-ops")
        plot_time = gr.Plot(label="PSNR vs latency", show_label=False, elem_id="plot-time")
        with gr.Accordion("Videos", open=False):
            videos = gr.Gallery(label="Reconstructions as video", columns=4, height="auto", fit_columns=False,
                                elem_id="videos")
        with gr.Accordion("Per-frame scores", open=False):
            per_frame = gr.Dataframe(label="PSNR / SSIM per frame", interactive=False, elem_id="per-frame")
        with gr.Accordion("Downloads and JSON", open=False):
            files = gr.File(label="Reconstructions (.npz / .mat) and videos", file_count="multiple",
                            interactive=False, elem_id="files")
            summary_json = gr.JSON(label="Summary (same as the reconstruct_scene API)", elem_id="summary-json")

        # UI events are private (not in the API page); the stable API is the gr.api/hidden block below.
        run_outputs = events.run_outputs(dict(
            run_state=run_state, status_line=status_line, scene_info=scene_info, inputs_view=inputs_view,
            frame=frame, results=results, videos=videos, summary=summary, per_frame=per_frame,
            plot_ops=plot_ops, plot_time=plot_time, files=files, summary_json=summary_json))
        run_opts = dict(api_visibility="private", concurrency_id=HEAVY, show_progress_on=[status_line, results])
        scene_evt = scene_btn.click(events.run_scene, [scene, scene_which, methods], run_outputs,
                                    api_name="ui_run_scene", **run_opts)
        up_evt = up_btn.click(events.run_upload, [up_meas, up_mask, up_gt, up_index, up_scaling, methods],
                              run_outputs, api_name="ui_run_upload", **run_opts)
        sim_evt = sim_btn.click(events.run_simulate, [sim_video, sim_clip, sim_mask, sim_seed, sim_cr, sim_noise,
                                                      sim_size, methods], run_outputs, api_name="ui_run_simulate",
                                **run_opts)
        scene.change(events.describe_scene_choice, scene, scene_note, api_visibility="private",
                     concurrency_limit=None, show_progress="hidden")
        sim_video.change(events.simulate_source, sim_video, [sim_source, sim_clip, sim_size],
                         api_visibility="private", concurrency_limit=None, show_progress="hidden")
        gr.on([up_meas.change, up_mask.change, up_gt.change], events.inspect_upload, [up_meas, up_mask, up_gt],
              [up_info, up_index], api_name="ui_inspect_upload", api_visibility="private", concurrency_limit=2,
              concurrency_id="inspect")
        stop_btn.click(events.stop_run, None, status_line, cancels=[scene_evt, up_evt, sim_evt], queue=False,
                       api_visibility="private")
        frame.change(events.show_frame, [run_state, frame], results, api_visibility="private",
                     concurrency_limit=None, trigger_mode="always_last", show_progress="hidden")

        # built on page load, not at start-up: the table reads the manifest and every method's weights
        # status (the S-preset BOPs are stored constants, qsci.plots.S_PRESET_BOPS)
        demo.load(handlers.method_note, None, method_table, api_visibility="private", show_progress="hidden",
                  concurrency_limit=None)

        # API-only endpoints: stable names and documented JSON results for scripts (see README).
        gr.api(events.api_reconstruct_scene, api_name="reconstruct_scene", concurrency_id=HEAVY)
        with gr.Column(visible=False):
            api_meas = gr.File(label="meas_file")
            api_mask = gr.File(label="mask_file")
            api_gt = gr.File(label="gt_file (optional)")
            api_video = gr.File(label="video_file (optional; else clip)")
            api_methods = gr.Dropdown([v for _, v in method_choices], multiselect=True, allow_custom_value=True,
                                      label="methods")
            api_clip = gr.Dropdown(clips, value=clips[0] if clips else None, allow_custom_value=True, label="clip")
            api_mask_kind = gr.Radio(["random", "quantized_sci"], value="random", label="mask_kind")
            api_seed = gr.Number(0, precision=0, label="seed")
            api_cr = gr.Number(8, precision=0, label="cr")
            api_noise = gr.Number(0.0, label="noise")
            api_size = gr.Number(256, precision=0, label="size")
            api_json = gr.JSON(label="scores per method")
            api_info = gr.JSON(label="what was read")
            api_files = gr.File(file_count="multiple", label="reconstructions (.npz)")
            api_btn, api_sim_btn, api_inspect_btn = gr.Button(), gr.Button(), gr.Button()
        api_btn.click(events.api_reconstruct_upload, [api_meas, api_mask, api_gt, api_methods],
                      [api_json, api_files], api_name="reconstruct_upload", concurrency_id=HEAVY)
        api_sim_btn.click(events.api_reconstruct_simulated, [api_video, api_clip, api_mask_kind, api_seed, api_cr,
                                                             api_noise, api_size, api_methods], api_json,
                          api_name="reconstruct_simulated", concurrency_id=HEAVY)
        api_inspect_btn.click(events.api_inspect_upload, [api_meas, api_mask, api_gt], api_info,
                              api_name="inspect_upload", concurrency_limit=2, concurrency_id="inspect")

    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def app_css() -> str:
    """Styles of the status line and the results panel (Gradio 6 takes CSS at launch)."""
    from ui import panel, status

    return status.CSS + panel.CSS


def main() -> None:
    from qsci.runners import tune_allocator

    # before Gradio starts its worker threads, so that they share the tuned main heap: the app
    # then times what `qsci bench` times (scripts/app_vs_bench.py)
    tune_allocator()
    demo = build_demo()
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_FILE_SIZE,
        show_error=True,
        css=app_css(),
        footer_links=["api", "gradio"],
    )


if __name__ == "__main__":
    main()
