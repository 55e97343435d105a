"""Inference, one concept per module: :mod:`.predictor` (a checkpoint made ready to predict), :mod:`.steps` (the
stream and window step generators), :mod:`.scoring` (video-level scores and the timeline), :mod:`.render` (the
labels drawn onto the video), :mod:`.live` (cameras and streams), :mod:`.onnx_runtime` (the same predictor on
onnxruntime, without the model code) and :mod:`.export` (the ONNX export).

Nothing is imported here, so that the onnxruntime runner and a tool's argument checks load neither torch's model
code nor torchvision.

>>> from vidrcnn.inference.predictor import load_predictor              # doctest: +SKIP
>>> from vidrcnn.inference.scoring import predict_video                  # doctest: +SKIP
>>> predict_video(load_predictor("runs/ucf/best.pt"), "video.avi").topk(5)  # doctest: +SKIP
"""
