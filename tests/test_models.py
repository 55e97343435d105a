"""Every registered model: shapes, gradients, weight sharing, causality, streaming; the registry; the RCNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidrcnn.errors import CheckpointError, ConfigError
from vidrcnn.models import RCN, get_model, list_models, register_model
from vidrcnn.models.backbones import STEM_FRAMES

K = 5  # classes
ALL = list_models()
CAUSAL = [n for n in ALL if n.startswith(("rcn_", "cnn_lstm_"))]
TORCHVISION = ("r3d_18", "mc3_18", "r2plus1d_18")

pytestmark = pytest.mark.usefixtures("one_thread")



def tiny_input(name: str, t: int = 4) -> torch.Tensor:
    if name in TORCHVISION or name.endswith("_m"):
        return torch.randn(1, 3, t, 32, 32)
    return torch.randn(2, 3, t, 16, 16)


def build(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return get_model(name, num_classes=K, **kw)


def test_registry_names():
    expected = {f"rcn_{c}_{s}" for c in ("rnn", "rcl", "gru", "lstm", "mingru") for s in "sm"} | {
        "cnn_lstm_s", "cnn_lstm_m", "c3d_s", "c3d_m", "r3d_18", "mc3_18", "r2plus1d_18", "frame_avg_s",
        "frame_avg_m", "rcnn_k96", "rcnn_k128", "rcnn_k160"}
    assert set(ALL) == expected


def test_unknown_name_lists_close_names():
    with pytest.raises(ConfigError, match="rcn_gru_s"):
        get_model("rcn_gru_ss", num_classes=K)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("rcn_gru_s")(lambda **kw: nn.Identity())


@pytest.mark.parametrize("name", ALL)
def test_forward_backward(name):
    model = build(name)
    assert isinstance(model.is_causal, bool) and model.is_causal == (name in CAUSAL)
    x = tiny_input(name).requires_grad_()
    out = model(x)
    assert out.shape == (x.shape[0], K)
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    assert x.grad[:, :, 0].abs().sum() > 0  # the gradient reaches the first time step


@pytest.mark.parametrize("name", [n for n in ALL if n.endswith("_s")])
def test_parameters_shared_over_time(name):
    """One set of weights runs clips of any length: no parameter is created or resized by T."""
    model = build(name).eval()
    before = {k: v.shape for k, v in model.state_dict().items()}
    for t in (1, 3, 7):
        assert model(tiny_input(name, t)).shape[-1] == K
    assert {k: v.shape for k, v in model.state_dict().items()} == before


@pytest.mark.parametrize("name", [n for n in CAUSAL if n.startswith("rcn_")])
def test_recurrent_layers_have_their_own_weights(name):
    model = build(name)
    ptrs = [{p.data_ptr() for p in layer.parameters()} for layer in model.layers]
    assert len(ptrs) >= 2
    assert all(not (a & b) for i, a in enumerate(ptrs) for b in ptrs[i + 1:])


def _stream_name_kw():
    cases = [(n, {}) for n in CAUSAL]
    return cases + [("rcn_gru_s", {"head": "mean"}), ("rcn_lstm_s", {"head": "mean", "peephole": True}),
                    # the training options: per-frame norms, chrono gate biases, residual layers
                    ("rcn_gru_s", {"preact_norm": "group", "chrono": 16, "residual": True}),
                    ("rcn_lstm_s", {"preact_norm": "layer", "chrono": 16, "residual": True, "head": "mean"}),
                    ("rcn_mingru_s", {"preact_norm": "group", "residual": True}),
                    ("rcn_rnn_s", {"preact_norm": "group", "residual": True}),
                    ("rcn_rcl_s", {"preact_norm": "group"}), ("rcn_gru_s", {"preact_norm": "batch", "head": "steps"}),
                    ("rcn_gru_s", {"preact_norm": "batch", "input_frames": 2}),
                    ("rcn_mingru_s", {"input_frames": 3, "residual": True}),
                    # time in the stem's first layer: its past frames travel in the stream state
                    ("rcn_gru_s", {"stem_frames": 2}), ("rcn_lstm_s", {"stem_frames": 3, "head": "mean"}),
                    ("rcn_rcl_s", {"stem_frames": 2, "stem_strides": (1, 2)}), ("cnn_lstm_s", {"stem_frames": 3}),
                    # the stem's later layers at full resolution before a max pool; ReLU in place of tanh
                    ("rcn_gru_s", {"stem_downsample": "pool", "activation": "relu"}),
                    ("rcn_lstm_s", {"stem_downsample": "pool", "activation": "relu"}),
                    ("rcn_rnn_s", {"stem_frames": 1, "stem_downsample": "pool", "activation": "relu"}),
                    ("cnn_lstm_s", {"stem_downsample": "pool"}),
                    # the causal first layer strided instead of pooled
                    ("rcn_gru_s", {"stem_frames": 3, "stem_downsample": "stride", "stem_first_downsample": "stride"}),
                    ("cnn_lstm_s", {"stem_first_downsample": "stride"}),
                    # the initialisations of 2026-12-04 (the rnn, rcl and mingru defaults are in CAUSAL above)
                    ("rcn_gru_s", {"state_init": "identity", "norm_scale": 0.1}),
                    ("rcn_lstm_s", {"state_init": "identity", "norm_scale": 0.1, "head": "mean"}),
                    # the coupled input-forget gate (three gates)
                    ("rcn_lstm_s", {"coupled": True, "peephole": True, "chrono": 16})]


@pytest.mark.parametrize(("name", "kw"), _stream_name_kw())
def test_causal(name, kw):
    model = build(name, **kw).eval()
    x = tiny_input(name, 5)
    y = x.clone()
    y[:, :, 3:] = torch.randn_like(y[:, :, 3:])  # change frames after t = 2
    with torch.no_grad():
        px, _ = model.stream(x)
        py, _ = model.stream(y)
    torch.testing.assert_close(px[:, :3], py[:, :3])
    assert not torch.allclose(px[:, 3:], py[:, 3:])


@pytest.mark.parametrize(("name", "kw"), _stream_name_kw())
def test_streaming_chunked_equals_whole(name, kw):
    model = build(name, **kw).eval()
    x = tiny_input(name, 5)
    with torch.no_grad():
        whole, _ = model.stream(x)
        assert whole.shape == (x.shape[0], 5, K)
        torch.testing.assert_close(model(x), whole[:, -1])
        for chunks in ((1, 1, 1, 1, 1), (2, 3), (1, 2, 2)):
            state, outs, start = None, [], 0
            for n in chunks:
                out, state = model.stream(x[:, :, start:start + n], state)
                outs.append(out)
                start += n
            torch.testing.assert_close(torch.cat(outs, dim=1), whole, rtol=1e-5, atol=1e-6)


def test_mean_head_streams_the_running_mean():
    model = build("rcn_rnn_s", head="mean").eval()
    x = tiny_input("rcn_rnn_s", 4)
    with torch.no_grad():
        per_frame, _ = model.stream(x)
        for t in range(1, 5):
            torch.testing.assert_close(per_frame[:, t - 1], model(x[:, :, :t]))
        last = build("rcn_rnn_s").eval()(x)
    assert not torch.allclose(per_frame[:, -1], last)  # a different head is a different model


def test_frame_average_ignores_order_and_rcn_does_not():
    x = tiny_input("frame_avg_s", 4)
    reversed_x = x.flip(2)
    with torch.no_grad():
        fa = build("frame_avg_s").eval()
        torch.testing.assert_close(fa(x), fa(reversed_x))
        rcn = build("rcn_gru_s").eval()
        assert not torch.allclose(rcn(x), rcn(reversed_x))


@pytest.mark.parametrize(("name", "params"), [("rcnn_k96", 672_202), ("rcnn_k128", 1_191_178),
                                              ("rcnn_k160", 1_857_610)])
def test_rcnn_parameter_counts_match_liang_and_hu(name, params):
    model = get_model(name, num_classes=10)
    n = sum(p.numel() for p in model.parameters())
    assert n == params
    assert round(n / 1e6, 2) == {"rcnn_k96": 0.67, "rcnn_k128": 1.19, "rcnn_k160": 1.86}[name]


def test_rcnn_images_and_videos():
    model = build("rcnn_k96").eval()
    frames = torch.randn(2, 3, 3, 16, 16)
    with torch.no_grad():
        assert model(frames[:, :, 0]).shape == (2, K)
        per_frame = torch.stack([model(frames[:, :, t]) for t in range(3)], dim=1)
        torch.testing.assert_close(model(frames), per_frame.mean(dim=1))
    assert model.steps == 4  # T = 3 recurrent iterations after the feed-forward step


def test_rcn_options():
    model = build("rcn_rcl_s", norm="bn", channels=(8, 8, 8), dropout=0.5)
    assert isinstance(model, RCN) and len(model.layers) == 3
    assert isinstance(model.layers[0].cell.norm, nn.BatchNorm2d)
    assert model(tiny_input("rcn_rcl_s")).shape == (2, K)
    with pytest.raises(ConfigError, match="cannot build model 'rcn_gru_s' with head='max': .*head"):
        build("rcn_gru_s", head="max")
    with pytest.raises(ConfigError, match=r"model 'c3d_s' has no option 'stem_strides' \(given stem_strides=\(1, 2\)\); "
                                          r"the models that take it: .*rcn_gru_s"):
        build("c3d_s", stem_strides=(1, 2))  # an option another family has: say which models take it
    with pytest.raises(ConfigError, match=r"model 'c3d_s' has no option 'checkpoint_every' .* rcn_gru_m, rcn_gru_s"):
        build("c3d_s", checkpoint_every=2)


@pytest.mark.parametrize("size", ["s", "m"])
def test_a_coupled_convlstm_has_three_gates_at_the_convgrus_widths(size):
    lstm, gru = build(f"rcn_lstm_{size}", coupled=True), build(f"rcn_gru_{size}")
    assert [layer.cell.hidden_channels for layer in lstm.layers] == [layer.cell.hidden_channels for layer in gru.layers]
    assert all(layer.cell.num_gates == 3 for layer in lstm.layers)
    assert sum(p.numel() for p in lstm.parameters()) == sum(p.numel() for p in gru.parameters())
    narrow = build(f"rcn_lstm_{size}", coupled=True, channels=(8, 8))  # widths asked for are kept
    assert [layer.cell.hidden_channels for layer in narrow.layers] == [8, 8]


def test_residual_adds_each_layers_input_through_a_projection():
    model = build("rcn_gru_s", residual=True).eval()
    plain = build("rcn_gru_s", residual=False).eval()
    assert [type(s).__name__ for s in model.skips] == ["Conv3d", "Conv3d"]  # widths 32 -> 48 -> 64 all differ
    assert model.skips[0].kernel_size == (1, 1, 1) and model.skips[0].bias is None
    x = tiny_input("rcn_gru_s")
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("skips.") for k in missing)
    with torch.no_grad():
        for skip in model.skips:
            skip.weight.zero_()  # a zero projection: exactly the plain model
        torch.testing.assert_close(model(x), plain(x))
        nn.init.normal_(model.skips[1].weight)
        assert not torch.allclose(model(x), plain(x))
    assert build("rcn_gru_s", residual=True, channels=(32, 32)).skips[0].__class__ is nn.Identity


@pytest.mark.parametrize("name", ["rcn_gru_s", "cnn_lstm_s", "frame_avg_s"])
def test_stem_strides_change_the_resolution_the_2d_models_work_at(name):
    x = torch.randn(2, 3, 4, 32, 32)
    sizes = {}
    for strides in (None, (1, 2), [1, 1]):  # a list, as a YAML config gives it
        model = build(name, stem_strides=strides)
        stem_out = model.stem(x) if isinstance(model, RCN) or getattr(model, "stem", None) is not None else (
            model.frame_net[0](x[:, :, 0]))
        stem_out = stem_out[0] if isinstance(stem_out, tuple) else stem_out  # a CausalStem also gives its past
        sizes[str(strides)] = stem_out.shape[-1]
        assert model(x).shape == (2, K)
    assert sizes == {"None": 8, "(1, 2)": 16, "[1, 1]": 32}
    for bad in ((1,), (1, 0), (1, 2, 2)):
        with pytest.raises(ConfigError, match="stem_strides must be 2 integers"):
            build(name, stem_strides=bad)
    with pytest.raises(ConfigError, match="small stem only"):
        build(name, stem="resnet18", stem_strides=(1, 2))


def test_stem_frames_compare_each_frame_with_its_predecessors_at_full_resolution():
    from vidrcnn.models.backbones import CausalStem

    model = build("rcn_gru_s", stem_frames=2).eval()
    assert isinstance(model.stem, CausalStem)
    assert model.stem.conv.kernel_size == (2, 3, 3) and model.stem.conv.stride == (1, 1, 1)
    x = torch.randn(2, 3, 4, 32, 32)
    y = x.clone()
    y[:, :, 1, 16, 16] += 1.0  # one pixel of frame 1
    with torch.no_grad():
        sx, past = model.stem(x)
        sy, _ = model.stem(y)
        flat = build("rcn_gru_s", stem_frames=1).eval().stem(x)
    assert sx.shape == flat.shape == (2, 32, 4, 8, 8)  # the same grid as the per-frame stem: pool, not stride
    torch.testing.assert_close(past, x[:, :, -1:])  # the state: the last input frame
    changed = (sx - sy).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert changed.tolist() == [False, True, True, False]  # frame 1 itself and frame 2, which sees it; not 0 or 3
    with torch.no_grad():  # a zero tap on the past frame: every frame's features are its own again
        model.stem.conv.weight[:, :, 0] = 0
        sx, _ = model.stem(x)
        sy, _ = model.stem(y)
    assert ((sx - sy).abs().amax(dim=(0, 1, 3, 4)) > 0).tolist() == [False, True, False, False]
    for bad in (0, 1.5, "2"):
        with pytest.raises(ConfigError, match="stem_frames must be an integer"):
            build("rcn_gru_s", stem_frames=bad)
    with pytest.raises(ConfigError, match="small stem only"):
        build("rcn_gru_s", stem="resnet18", stem_frames=2)


def test_stem_downsample_pool_convolves_at_full_resolution_then_max_pools():
    torch.manual_seed(0)
    strided = build("rcn_gru_s", stem_downsample="stride").eval()
    pooled = build("rcn_gru_s", stem_downsample="pool").eval()
    pooled.load_state_dict(strided.state_dict())  # the same parameters: only where the layer is evaluated differs
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        first = strided.stem.pool(torch.relu(strided.stem.bn(strided.stem.conv(
            torch.cat([x[:, :, :1].expand(-1, -1, strided.stem.frames - 1, -1, -1), x], dim=2)))))  # (2, 16, 4, 16, 16)
        conv, bn = strided.stem.rest.module[0][0], strided.stem.rest.module[0][1]
        frames = first.transpose(1, 2).flatten(0, 1)
        full = torch.relu(bn(nn.functional.conv2d(frames, conv.weight, padding=1)))  # stride 1: every position
        expected = nn.functional.max_pool2d(full, 2).unflatten(0, (2, 4)).transpose(1, 2)
        got, _ = pooled.stem(x)
        assert got.shape == strided.stem(x)[0].shape == (2, 32, 4, 8, 8)  # the same grid as the strided stem
        torch.testing.assert_close(got, expected)
        assert not torch.allclose(got, strided.stem(x)[0])
    per_frame = build("rcn_gru_s", stem_frames=1, stem_downsample="pool")  # the per-frame stem pools both layers
    assert sum(isinstance(m, nn.MaxPool2d) for m in per_frame.stem.modules()) == 2
    with pytest.raises(ConfigError, match="stem_downsample must be one of"):
        build("rcn_gru_s", stem_downsample="avg")
    with pytest.raises(ConfigError, match="small stem only"):
        build("cnn_lstm_s", stem="resnet18", stem_downsample="pool")


def test_stem_first_downsample_stride_evaluates_the_causal_layer_at_every_other_position():
    torch.manual_seed(0)
    pooled = build("rcn_gru_s", stem_frames=3, stem_downsample="stride").eval()
    strided = build("rcn_gru_s", stem_frames=3, stem_downsample="stride", stem_first_downsample="stride").eval()
    strided.load_state_dict(pooled.state_dict())  # the same parameters: only where the first layer is evaluated
    assert isinstance(strided.stem.pool, nn.Identity) and isinstance(pooled.stem.pool, nn.MaxPool3d)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        xp = torch.cat([x[:, :, :1].expand(-1, -1, 2, -1, -1), x], dim=2)
        full = torch.relu(pooled.stem.bn(pooled.stem.conv(xp)))  # (2, 16, 4, 32, 32): every position
        expected = pooled.stem.rest(full[..., ::2, ::2])
        got, _ = strided.stem(x)
        assert got.shape == pooled.stem(x)[0].shape == (2, 32, 4, 8, 8)  # the same grid as the pooled stem
        torch.testing.assert_close(got, expected)
        assert not torch.allclose(got, pooled.stem(x)[0])
    assert strided.stem.conv.stride == (1, 2, 2) and pooled.stem.conv.stride == (1, 1, 1)
    with pytest.raises(ConfigError, match="stem_first_downsample applies to the small stem with time"):
        build("rcn_gru_s", stem_frames=1, stem_first_downsample="stride")
    with pytest.raises(ConfigError, match="stem_first_downsample must be one of"):
        build("rcn_gru_s", stem_first_downsample="avg")
    with pytest.raises(ConfigError, match="stem_first_downsample applies"):
        build("cnn_lstm_s", stem="resnet18", stem_frames=1, stem_first_downsample="pool")


def test_cnn_lstm_takes_the_rcns_stem_by_default_and_the_per_frame_one_on_request():
    from vidrcnn.models.backbones import CausalStem

    assert isinstance(build("cnn_lstm_s").stem, CausalStem) and build("cnn_lstm_s").stem.frames == STEM_FRAMES
    assert build("cnn_lstm_s", stem_frames=1).stem is None
    assert build("cnn_lstm_s", stem="resnet18").stem is None  # a pretrained 2-D stem sees one frame
    frame_avg = build("frame_avg_s")  # the order-blind control keeps seeing one frame at a time
    assert not any(isinstance(m, (CausalStem, nn.Conv3d)) for m in frame_avg.modules())


def test_resnet18_stem_from_a_local_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    reference = resnet18()
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    model = build("rcn_gru_s", stem="resnet18", stem_weights=path, resnet_stage=1)
    torch.testing.assert_close(model.stem.module[0].weight, reference.conv1.weight)
    assert model(tiny_input("rcn_gru_s")).shape == (2, K)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        build("cnn_lstm_s", stem="resnet18", stem_weights=bad)


def test_torchvision_weights_from_a_bad_file_raise_checkpoint_error(tmp_path):
    bad = tmp_path / "r3d.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="r3d.pt"):
        get_model("r3d_18", num_classes=K, pretrained=bad)


def test_steps_head_gives_every_steps_logits_in_training_and_the_last_in_eval():
    from vidrcnn.engine.train_step import clip_loss

    model = build("rcn_gru_s", head="steps")
    x = tiny_input("rcn_gru_s", 4)
    per_step = model.train()(x)
    assert per_step.shape == (2, 4, K)
    model.eval()
    with torch.no_grad():
        streamed, _ = model.stream(x)
        torch.testing.assert_close(model(x), streamed[:, -1])
    y = torch.tensor([1, 3])
    expected = torch.stack([nn.functional.cross_entropy(per_step[:, t], y) for t in range(4)]).mean()
    torch.testing.assert_close(clip_loss(per_step, y), expected)


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("rcn_")])
def test_rcn_builders_default_to_input_batchnorm_and_residual_and_can_build_the_old_models(name):
    from vidrcnn.layers import PerFrame
    from vidrcnn.models.backbones import CausalStem

    model = build(name)
    frames = 3 if name.startswith("rcn_mingru_") else STEM_FRAMES  # the minGRU's is the strided 3-frame stem
    assert isinstance(model.stem, CausalStem) and model.stem.frames == frames and STEM_FRAMES == 5
    assert isinstance(build(name, stem_frames=1).stem, PerFrame)
    assert isinstance(build(name, stem="resnet18").stem, PerFrame)  # a 2-D pretrained stem sees one frame
    for layer in model.layers:
        assert isinstance(layer.cell.input_norm, nn.BatchNorm2d)
        assert not any(isinstance(m, nn.GroupNorm) for m in layer.cell.modules())  # no state norm with "batch"
    assert model.skips is not None  # and residual layers
    old = build(name, preact_norm=None)
    assert all(isinstance(layer.cell.input_norm, nn.Identity) for layer in old.layers)
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in old.parameters()) == sum(
        2 * layer.cell.input_conv.out_channels for layer in model.layers)  # a scale and a shift per map, no more


@pytest.mark.parametrize("name", ["rcn_mingru_s", "rcn_mingru_m"])
def test_the_mingru_builders_start_the_update_gate_with_chrono_biases(name):
    for layer in build(name).layers:  # z's bias is -log U[1, 15]: the state starts out kept over 1..15 steps
        b_z = layer.cell.input_norm.bias[:layer.cell.hidden_channels]
        assert (b_z <= 0).all() and (b_z >= -torch.log(torch.tensor(15.0)) - 1e-6).all() and b_z.std() > 0.1
    plain = build(name, chrono=None).layers[0].cell  # the minGRU before 2026-12-04
    assert (plain.input_norm.bias[:plain.hidden_channels] == 0).all()


@pytest.mark.parametrize("name", ["rcn_rnn_s", "rcn_rnn_m", "rcn_rcl_s", "rcn_rcl_m"])
def test_the_vanilla_and_rcl_builders_start_the_state_kernel_as_the_identity(name):
    def is_dirac(w):
        return torch.equal(w, nn.init.dirac_(torch.empty_like(w)))

    assert all(is_dirac(layer.cell.state_conv.weight) for layer in build(name).layers)  # IRNN
    assert not any(is_dirac(layer.cell.state_conv.weight) for layer in build(name, state_init="default").layers)
    if name == "rcn_rcl_s":  # Liang & Hu's RCNN stays as in the paper
        assert not is_dirac(build("rcnn_k96").rcl2.cell.state_conv.weight)


@pytest.mark.parametrize("name", ["rcn_gru_s", "rcn_lstm_s", "rcn_gru_m", "rcn_lstm_m"])
def test_the_gated_builders_start_the_candidates_state_kernel_as_the_identity(name):
    def candidate_kernel(cell):  # the ConvGRU's own convolution; the coupled ConvLSTM's block c of f, c, o
        return cell.state_conv_n.weight if hasattr(cell, "state_conv_n") else cell.state_conv.weight.chunk(3)[1]

    for layer in build(name).layers:
        w = candidate_kernel(layer.cell)
        assert torch.equal(w, nn.init.dirac_(torch.empty_like(w)))
    w = candidate_kernel(build(name, state_init="default").layers[0].cell)
    assert not torch.equal(w, nn.init.dirac_(torch.empty_like(w)))


def test_liang_and_hu_rcnn_has_no_preactivation_norm():
    model = build("rcnn_k96")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in model.rcl2.cell.modules()
                   if m is not getattr(model.rcl2.cell, "norm", None))
