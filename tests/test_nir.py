"""NIR in and out: the exact export runs the ideal float twin, our graphs import back bit for bit,
an snnTorch network comes in close to its source and runs on the RTL, and every other graph is
refused in one sentence."""

import json
import re
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from neuromosaic.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from neuromosaic.model.config import ConfigError
from neuromosaic.model.data import CochleaEncoder, load_fsdd
from neuromosaic.model.nir_euler import run
from neuromosaic.model.nir_export import export_graph
from neuromosaic.model.nir_import import import_graph
from neuromosaic.model.snn import FloatSRNN, IntegerSRNN, SRNNConfig

from neuromosaic.cli import main

FSDD = Path(__file__).resolve().parent / "data" / "fsdd"


def _checkpoint(channels=12, neurons=16, outputs=5, seed=0, **core) -> Checkpoint:
    """A random integer network that fires (neither silent nor saturated)."""
    g = torch.Generator().manual_seed(seed)
    c = SRNNConfig.make(channels=channels, neurons=neurons, outputs=outputs, lanes=4,
                        **{"threshold": 300, "refractory_jump": 500, **core})
    return Checkpoint(c, torch.randint(-60, 100, (neurons, channels), generator=g),
                      torch.randint(-80, 80, (neurons, neurons), generator=g),
                      torch.randint(-100, 100, (outputs, neurons), generator=g))


def _fsdd_inputs(channels: int) -> torch.Tensor:
    ds = load_fsdd(FSDD, encoder=CochleaEncoder(channels=channels), steps=60, progress=False,
                   cache_dir=None)
    return ds.rasters[:8].transpose(0, 1).double()                  # [T, B, channels] event counts


@pytest.mark.parametrize("inputs", ["random", "fsdd"])
def test_exported_graph_runs_the_ideal_float_twin_exactly(tmp_path, inputs):
    ck = _checkpoint(channels=32, neurons=24, outputs=5, current_decay_shift=1, membrane_decay_shift=3,
                     refractory_decay_shift=2, readout_decay_shift=2)
    path = tmp_path / "net.nir"
    nir.write(path, export_graph(ck, dt=2e-3))
    graph = nir.read(path)                                           # alphabetical order: an evaluation order
    x = (torch.rand(60, 6, 32, generator=torch.Generator().manual_seed(3)) < 0.25).double() \
        if inputs == "random" else _fsdd_inputs(32)
    twin = FloatSRNN(ck.config, exact=False)
    spikes = twin.hidden(x, ck.w_in.double(), ck.w_rec.double())
    logits = twin.readout(spikes, ck.w_out.double())
    assert 0.05 < spikes.mean() < 0.7                                # neither silent nor saturated
    assert torch.equal(run(graph, x, 2e-3, probe="c_spike"), spikes)
    assert torch.allclose(run(graph, x, 2e-3)[-1], logits, rtol=1e-12, atol=1e-12)
    # a twin with the threshold one unit higher is not what the graph computes: the check can fail
    higher = FloatSRNN(ck.config.__class__.from_dict({**ck.config.to_dict(), "core": {
        **ck.config.core.to_dict(), "threshold": ck.config.core.threshold + 1}}), exact=False)
    assert not torch.equal(run(graph, x, 2e-3, probe="c_spike"), higher.hidden(x, ck.w_in.double(), ck.w_rec.double()))


def test_round_trip_is_bit_exact(tmp_path, capsys):
    ck = _checkpoint(readout_decay_shift=4, logit_shift=9)
    save_checkpoint(tmp_path / "ck", ck)
    assert main(["nir", "export", "--checkpoint", str(tmp_path / "ck"), "-o", str(tmp_path / "net.nir")]) == 0
    assert main(["nir", "import", str(tmp_path / "net.nir"), "--out", str(tmp_path / "back")]) == 0
    assert "neuromosaic exact export" in capsys.readouterr().out
    back = load_checkpoint(tmp_path / "back")
    assert back.config == ck.config
    for k in ("w_in", "w_rec", "w_out"):
        assert torch.equal(getattr(back, k), getattr(ck, k))
    x = torch.randint(0, 3, (40, 4, ck.config.channels), generator=torch.Generator().manual_seed(1))
    h0, l0 = IntegerSRNN(ck.config, ck.w_in, ck.w_rec, ck.w_out).run(x)
    h1, l1 = IntegerSRNN(back.config, back.w_in, back.w_rec, back.w_out).run(x)
    assert torch.equal(h0, h1) and torch.equal(l0, l1) and h0.any()
    report = json.loads((tmp_path / "back" / "import-report.json").read_text())
    assert report["exact"] and report["firing"]["spikes_source"] > 0
    # a graph changed after export does not pass as the exported network
    g = nir.read(tmp_path / "net.nir")
    g.nodes["e_w_rec"].weight[0, 0] += 1.5
    with pytest.raises(ConfigError, match="node 'e_w_rec' does not hold the integer weights"):
        import_graph(g)
    g.nodes["e_w_rec"].weight[0, 0] += 0.5
    with pytest.raises(ConfigError, match="node 'c_spike' differs|differs from what neuromosaic's exact export"):
        g.nodes["c_spike"].threshold[0] += 1
        import_graph(g)


def test_compat_export_imports_as_a_foreign_graph(tmp_path):
    ck = _checkpoint()
    g = export_graph(ck, compat=True)
    assert isinstance(g.nodes["b_recurrent"].nodes["lif"], nir.CubaLIF) and g.metadata["exact"] == "false"
    back, report = import_graph(g)
    assert not report["exact"] and report["dt_source"] == "the graph's metadata"
    assert back.config.core.membrane_decay_shift == ck.config.core.membrane_decay_shift
    assert back.config.core.current_decay_shift == ck.config.core.current_decay_shift
    assert report["firing"]["count_correlation"] > 0.9


def _snntorch_network(channels, neurons, outputs):
    import snntorch as snn  # a test extra of the project
    torch.manual_seed(7)
    # time constants off the power-of-two grid: alpha = 0.8 (tau_syn = 5 dt), beta = 0.9 (tau_mem = 10 dt)
    net = torch.nn.Sequential(
        torch.nn.Linear(channels, neurons, bias=False),
        snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=neurons, all_to_all=True, init_hidden=True),
        torch.nn.Linear(neurons, outputs, bias=False))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[1].recurrent.bias.zero_()
    return net


def _snntorch_spikes(net, x):
    from snntorch import utils
    utils.reset(net)
    with torch.no_grad():
        return torch.stack([net[1](net[0](xt)) for xt in x])


def test_snntorch_network_imports_close_to_its_source_and_runs_on_the_rtl(tmp_path, capsys):
    from snntorch.export_nir import export_to_nir
    channels, neurons, outputs = 12, 16, 5
    net = _snntorch_network(channels, neurons, outputs)
    nir.write(tmp_path / "snn.nir", export_to_nir(net, torch.zeros(channels)))
    x = (torch.rand(100, 8, channels, generator=torch.Generator().manual_seed(2)) < 0.2).to(torch.int64)
    np.save(tmp_path / "x.npy", x.numpy())
    out = tmp_path / "imported"
    assert main(["nir", "import", str(tmp_path / "snn.nir"), "--out", str(out), "--inputs", str(tmp_path / "x.npy"),
                 "--steps", "20"]) == 0
    printed = capsys.readouterr().out
    assert "approximated: the reset to zero is replaced by the refractory trace" in printed
    report = json.loads((out / "import-report.json").read_text())
    assert report["dt_source"].startswith("inferred from r = tau_mem / dt")
    assert report["shifts"] == {"current_decay_shift": 2, "membrane_decay_shift": 3, "readout_decay_shift": 0}
    ck = load_checkpoint(out)
    source = _snntorch_spikes(net, x.float()).sum((0, 1)).numpy()
    ours = IntegerSRNN(ck.config, ck.w_in, ck.w_rec, ck.w_out).hidden(x).sum((0, 1)).double().numpy()
    assert source.std() > 0 and np.corrcoef(source, ours)[0, 1] >= 0.9
    assert ours.tolist() == report["firing"]["per_neuron_imported"]
    # the imported checkpoint is a checkpoint like a trained one: its tasks run bit-exact on the RTL ...
    assert main(["cosim", "learning", "--checkpoint", str(out), "--episodes", "1", "--shots", "3", "--queries", "2",
                 "--sim", "icarus"]) == 0
    assert "PASS icarus" in capsys.readouterr().out
    # ... and it builds for the iCEBreaker
    assert main(["fpga", "build", "--board", "icebreaker", "--checkpoint", str(out),
                 "--out", str(tmp_path / "fpga")]) == 0
    built = json.loads((tmp_path / "fpga" / "icebreaker" / "chip.report.json").read_text())
    assert built["logic_cells"] <= built["logic_cells_available"]


# -- refusals: every other graph shape, in one sentence naming the node ---------------------------
def _layer(**change):
    """A well-formed foreign layer (snnTorch's convention, dt = 1e-4) with ``change`` applied."""
    n, c, o = 4, 3, 2
    p = {"tau_syn": np.full(n, 5e-4), "tau_mem": np.full(n, 1e-3), "r": np.full(n, 10.0), "v_leak": np.zeros(n),
         "v_threshold": np.ones(n), "v_reset": np.zeros(n), "w_in": np.full(n, 5.0)}
    p.update({k: v for k, v in change.items() if k in p})
    nodes = {"input": nir.Input(np.array([c])), "w_in": nir.Linear(np.ones((n, c))), "lif": nir.CubaLIF(**p),
             "w_rec": nir.Linear(np.eye(n)), "w_out": nir.Linear(np.ones((o, n))), "output": nir.Output(np.array([o]))}
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "w_out"),
             ("w_out", "output")]
    nodes.update(change.get("nodes", {}))
    for e in change.get("drop", []):
        edges.remove(e)
    return nir.NIRGraph(nodes=nodes, edges=edges + change.get("edges", []), type_check=False)


def test_a_wellformed_layer_imports():
    ck, report = import_graph(_layer())
    assert ck.config.neurons == 4 and report["shifts"]["membrane_decay_shift"] == 3


@pytest.mark.parametrize("graph, message", [
    (_layer(nodes={"conv": nir.Conv1d(None, np.ones((4, 4, 1)), 1, 0, 1, 1, np.zeros(4))},
            edges=[("lif", "conv")]),
     "node 'conv' is a Conv1d (convolutions are not supported)"),
    (_layer(nodes={"delay": nir.Delay(np.ones(4))}, edges=[("lif", "delay")]),
     "node 'delay' is a Delay (delays are not supported)"),
    (_layer(nodes={"lif2": nir.LIF(np.full(4, 1e-3), np.full(4, 10.0), np.zeros(4), np.ones(4)),
                   "w2": nir.Linear(np.eye(4))},
            drop=[("lif", "w_out")], edges=[("lif", "w2"), ("w2", "lif2"), ("lif2", "w_out")]),
     "the graph has 2 spiking layers (lif, lif2)"),
    (_layer(v_leak=np.full(4, 0.1)), "node 'lif' has a non-zero v_leak; allowed: zero"),
    (_layer(v_reset=np.full(4, -0.5)), "node 'lif' has a non-zero v_reset"),
    (_layer(tau_mem=np.array([1e-3, 1e-3, 2e-3, 1e-3])), "node 'lif' has per-neuron tau_mem (0.001 to 0.002)"),
    (_layer(nodes={"w_in": nir.Affine(np.ones((4, 3)), np.full(4, 0.2))}), "node 'w_in' has a non-zero bias"),
    (_layer(r=np.ones(4)), "dt cannot be inferred from node 'lif' (r = 1, not tau_mem / dt); give --dt"),
    (_layer(tau_syn=np.full(4, 5e-5)), "node 'lif' has tau = 5e-05 s, shorter than the step dt = 0.0001 s"),
    (_layer(v_threshold=np.array([1.0, -1.0, 1.0, 1.0])), "node 'lif' has thresholds -1 to 1; allowed: positive"),
    (_layer(drop=[("input", "w_in")], edges=[("input", "lif")]), "node 'input' feeds the spiking layer 'lif' directly"),
    (_layer(nodes={"extra": nir.Linear(np.ones((4, 4)))}, edges=[("w_in", "extra")]),
     "node 'extra' is not part of the layer"),
    (_layer(nodes={"w2": nir.Linear(np.ones((2, 4)))}, edges=[("lif", "w2"), ("w2", "output")]),
     "the spiking layer 'lif' feeds w_out, w2 besides its recurrence"),
    (_layer(nodes={"w_in": nir.Linear(np.zeros((4, 3))), "w_rec": nir.Linear(np.zeros((4, 4)))}),
     "the weights into 'lif' are all zero"),
    (_layer(nodes={"w_out": nir.Linear(np.ones((2, 5)))}), "the weights do not chain"),
    (_layer(nodes={"ro": nir.LI(np.full(2, 1e-3), np.ones(2), np.full(2, 0.5))}, drop=[("w_out", "output")],
            edges=[("w_out", "ro"), ("ro", "output")]), "node 'ro' has a non-zero v_leak"),
])
def test_refused_graphs(graph, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        import_graph(graph)


def test_spiking_readout_and_deep_nesting_are_refused():
    n = 2
    lif = nir.LIF(np.full(n, 1e-3), np.full(n, 10.0), np.zeros(n), np.ones(n))
    with pytest.raises(ConfigError, match="node 'ro' after the readout weights is a spiking readout"):
        import_graph(_layer(nodes={"ro": lif}, drop=[("w_out", "output")], edges=[("w_out", "ro"), ("ro", "output")]))
    inner = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "x": nir.NIRGraph.from_list(nir.Linear(np.eye(n))),
                                "output": nir.Output(np.array([n]))},
                         edges=[("input", "x"), ("x", "output")], type_check=False)
    with pytest.raises(ConfigError, match="node sub.x is a graph nested two levels deep"):
        import_graph(_layer(nodes={"sub": inner}, edges=[("w_out", "sub")]))


def test_nir_cli_refusals(tmp_path, capsys):
    ck = _checkpoint()
    save_checkpoint(tmp_path / "ck", ck)
    (tmp_path / "folder").mkdir()
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    cases = [
        (["nir", "export", "--checkpoint", str(tmp_path / "ck"), "-o", str(tmp_path / "folder")], "is a folder"),
        (["nir", "export", "--checkpoint", str(tmp_path / "ck"), "-o", str(tmp_path / "junk.nir" / "x.nir")],
         "junk.nir is a file, not a folder; allowed: a path under a folder"),
        (["nir", "export", "--checkpoint", str(tmp_path / "ck"), "-o", str(tmp_path / "x.nir"), "--dt", "-1"],
         "--dt -1 is not allowed"),
        (["nir", "import", str(tmp_path / "junk.nir"), "--out", str(tmp_path / "o")], "is not a readable NIR graph"),
        (["nir", "import", str(tmp_path / "missing.nir"), "--out", str(tmp_path / "o")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.nir").exists() and not (tmp_path / "o").exists()
    main(["nir", "export", "--checkpoint", str(tmp_path / "ck"), "-o", str(tmp_path / "x.nir")])
    assert main(["nir", "import", str(tmp_path / "x.nir"), "--out", str(tmp_path / "o"), "--weight-bits", "6"]) == 2
    assert "carries its config; weight_bits applies to graphs from other tools" in capsys.readouterr().err


def test_version(capsys):
    import neuromosaic
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"neuromosaic {neuromosaic.__version__}"
