"""Every machine fact a result set records, from its raw source, and the fingerprint over them.

Each fact is checked twice where this machine has it: from a stand-in (a py-cpuinfo dict of
a CPU this machine is not: AVX2 only, or AMX; nvidia-smi answering for GPUs it lacks;
cgroup text) and against the operating system's own files read independently here
(/proc/cpuinfo, /proc/meminfo, the affinity under `taskset`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_gpu_paths import _on_path  # nvidia-smi stand-ins on PATH, as those tests use them

from catsdogs.training import machine

#: py-cpuinfo's dict for an AVX2 server CPU without AVX-512 (the committed sets' kind).
AVX2_CPU = {"vendor_id_raw": "GenuineIntel", "brand_raw": "Intel(R) Xeon(R) CPU E5-2690 v4",
            "arch_string_raw": "x86_64", "family": 6, "model": 79, "stepping": 1,
            "flags": ["sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "ht", "aes"]}
#: ... and for a CPU with AMX, listed as py-cpuinfo does (both kernel and cpuid names).
AMX_CPU = {"vendor_id_raw": "GenuineIntel", "brand_raw": "Intel(R) Xeon(R) Platinum 8480+",
           "arch_string_raw": "x86_64", "family": 6, "model": 143, "stepping": 8,
           "flags": ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni",
                     "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8",
                     "amx_bf16", "avx_vnni"]}
STAND_IN = dict(info=AVX2_CPU, cpus=[0, 1], logical=2, physical=2, memory_bytes=25 * 2**30,
                cpu_max="max 100000", environ={}, smi_csv="")


def _proc_cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo, as key -> value."""
    block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    return {key.strip(): value.strip() for key, _, value in
            (line.partition(":") for line in block.splitlines())}


# ---------------------------------------------------------------- the CPU


def test_cpu_facts_name_the_kernel_features_of_a_stand_in_cpu():
    avx2 = machine.cpu_facts(AVX2_CPU)
    assert avx2["cpu_vendor"] == "GenuineIntel" and avx2["cpu_model"].endswith("v4")
    assert (avx2["cpu_family"], avx2["cpu_model_number"]) == (6, 79)
    assert avx2["cpu_features"] == ["sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c"]
    amx = machine.cpu_facts(AMX_CPU)["cpu_features"]
    assert {"amx_tile", "amx_int8", "amx_bf16", "avx512_vnni", "avx512_bf16"} <= set(amx)
    assert amx.count("avx512_vnni") == 1  # one feature, whichever name py-cpuinfo used
    assert machine.cpu_facts({})["cpu_features"] == []  # py-cpuinfo could not tell


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux /proc/cpuinfo")
def test_this_cpu_is_described_as_the_kernel_describes_it():
    proc = _proc_cpuinfo()
    facts = machine.cpu_facts(machine.cpu_info())
    if "vendor_id" in proc:
        assert facts["cpu_vendor"] == proc["vendor_id"]
        assert facts["cpu_model"] == proc["model name"]
        assert facts["cpu_family"] == int(proc["cpu family"])
    flags = set(proc.get("flags", proc.get("Features", "")).split())
    assert facts["cpu_features"] == [f for f in machine.KERNEL_FEATURES if f in flags]


# ---------------------------------------------------------------- CPUs, quota, memory


def test_cpu_counts_quota_and_memory_from_stand_ins():
    facts = machine.cpu_count_facts([3, 0, 1, 2, 6], 8, 4, "200000 100000")
    assert facts == {"cpus_usable": 5, "cpu_affinity": "0-3,6", "cpu_quota": "2",
                     "logical_cpus": 8, "physical_cores": 4}
    assert machine.cgroup_cpu_quota("50000 100000") == "0.5"
    assert machine.cgroup_cpu_quota("max 100000") == machine.cgroup_cpu_quota(None) == ""
    assert machine.memory_facts(25_275_990_016) == {"memory_bytes": 25_275_990_016,
                                                     "memory_gib": 24}
    assert machine.memory_facts(None)["memory_gib"] is None


def _facts_in_subprocess(*prefix: str) -> dict:
    """machine_facts() of a new process started under `prefix` (e.g. taskset -c 0)."""
    import json

    code = ("import json; from catsdogs.training import machine; "
            "print(json.dumps(machine.machine_facts()))")
    out = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=str(Path.cwd())))
    return json.loads(out.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity")
def test_usable_cpus_follow_the_affinity_and_memory_follows_proc_meminfo():
    here = machine.machine_facts()
    assert here["cpus_usable"] == len(os.sched_getaffinity(0))
    assert here["logical_cpus"] == os.cpu_count()
    mem_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal:")))
    assert here["memory_bytes"] == mem_kib * 1024
    pinned = _facts_in_subprocess("taskset", "-c", "0")
    assert pinned["cpus_usable"] == 1 and pinned["cpu_affinity"] == "0"
    if len(os.sched_getaffinity(0)) > 1:
        assert pinned["fingerprint"] != here["fingerprint"]


def test_settings_are_recorded_unset_as_empty():
    facts = machine.environment_facts({"OMP_NUM_THREADS": "1", "TF_ENABLE_ONEDNN_OPTS": "0",
                                       "HOME": "/root"})
    assert facts == {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "",
                     "TF_NUM_INTRAOP_THREADS": "", "TF_NUM_INTEROP_THREADS": "",
                     "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------- GPUs (stand-in nvidia-smi)

SMI_ROWS = ("0, GPU-aaaa, NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\\n"
            "1, GPU-bbbb, NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\\n")
#: Answers the full query, as a current driver does.
FAKE_SMI = f"""#!/bin/sh
case "$*" in
  *compute_cap*) printf '{SMI_ROWS}' ;;
  *) echo "unexpected: $*" >&2; exit 64 ;;
esac
"""
#: A driver older than compute_cap: refuses that field, answers the rest.
OLD_SMI = """#!/bin/sh
case "$*" in
  *compute_cap*) echo 'Field "compute_cap" is not a valid field to query.' ; exit 2 ;;
  *query-gpu=*) printf '0, GPU-aaaa, Tesla V100-SXM2-16GB, 16160, 470.57.02\\n' ;;
  *) exit 64 ;;
esac
"""


def test_gpus_come_from_nvidia_smi_limited_to_the_visible_ones(monkeypatch, tmp_path):
    _on_path(monkeypatch, tmp_path, FAKE_SMI)
    both = machine.gpu_facts(machine.query_gpus(), None)
    assert both["gpu_count"] == 2 and both["gpu_driver"] == "550.54.15"
    assert both["gpus"][0] == {"model": "NVIDIA H100 80GB HBM3", "memory_mib": 81559,
                               "compute_capability": "9.0"}
    assert machine.gpu_facts(machine.query_gpus(), ["1"])["gpu_count"] == 1
    assert machine.gpu_facts(machine.query_gpus(), ["GPU-bbbb"])["gpu_count"] == 1
    assert machine.gpu_facts(machine.query_gpus(), [])["gpu_count"] == 0  # CUDA_VISIBLE_DEVICES=""
    one = dict(STAND_IN, smi_csv=None, environ={"CUDA_VISIBLE_DEVICES": "0"})
    assert machine.machine_facts(**one)["gpu_count"] == 1


def test_an_old_driver_without_compute_cap_and_no_driver_at_all(monkeypatch, tmp_path):
    _on_path(monkeypatch, tmp_path, OLD_SMI)
    old = machine.gpu_facts(machine.query_gpus(), None)
    assert old["gpus"] == [{"model": "Tesla V100-SXM2-16GB", "memory_mib": 16160,
                            "compute_capability": ""}] and old["gpu_driver"] == "470.57.02"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert machine.gpu_facts(machine.query_gpus(), None) == {"gpu_count": 0, "gpus": [],
                                                             "gpu_driver": ""}


# ---------------------------------------------------------------- the fingerprint


CHANGES = {  # fact -> a stand-in machine that differs in it alone
    "cpu_model": dict(info=dict(AVX2_CPU, brand_raw="Intel(R) Xeon(R) Gold 6230")),
    "cpu_features": dict(info=dict(AVX2_CPU, flags=AVX2_CPU["flags"] + ["avx512f"])),
    "cpus_usable": dict(cpus=[0]),
    "cpu_quota": dict(cpu_max="100000 100000"),
    "physical_cores": dict(physical=1),
    "memory_gib": dict(memory_bytes=64 * 2**30),
    "TF_ENABLE_ONEDNN_OPTS": dict(environ={"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "ONEDNN_MAX_CPU_ISA": dict(environ={"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    "OMP_NUM_THREADS": dict(environ={"OMP_NUM_THREADS": "1"}),
    "TF_NUM_INTRAOP_THREADS": dict(environ={"TF_NUM_INTRAOP_THREADS": "1"}),
    "gpus": dict(smi_csv="0, GPU-a, NVIDIA L4, 23034, 550.54.15, 8.9\n"),
}


@pytest.mark.parametrize("fact", list(CHANGES))
def test_the_fingerprint_changes_with_each_fact_that_changes_kernels_or_speed(fact):
    base = machine.machine_facts(**STAND_IN)
    other = machine.machine_facts(**dict(STAND_IN, **CHANGES[fact]))
    assert base["fingerprint"] != other["fingerprint"]
    assert len(base["fingerprint"]) == 12
    named = machine.differences(base, other)
    assert named and all(" vs " in text or "only in" in text for text in named)


def test_the_fingerprint_ignores_which_cpus_and_the_exact_memory():
    base = machine.machine_facts(**STAND_IN)
    other_cpus = machine.machine_facts(**dict(STAND_IN, cpus=[2, 3]))
    assert other_cpus["fingerprint"] == base["fingerprint"]
    near = dict(STAND_IN, memory_bytes=25 * 2**30 - 10 * 2**20)  # 10 MiB less, same GiB
    assert machine.machine_facts(**near)["fingerprint"] == base["fingerprint"]
    assert machine.machine_facts(**STAND_IN) == base  # the same machine, the same facts


def test_differences_name_the_features_and_the_cpus():
    avx2 = machine.machine_facts(**STAND_IN)
    avx512 = machine.machine_facts(**dict(STAND_IN, info=dict(
        AVX2_CPU, flags=AVX2_CPU["flags"] + ["avx512f", "avx512bw"]), cpus=[0]))
    assert machine.differences(avx2, avx512) == [
        "CPU features avx512f, avx512bw only in candidate", "usable CPUs (affinity) 2 vs 1"]
    assert machine.differences(avx512, avx2, sides=("the set", "this session"))[0] == \
        "CPU features avx512f, avx512bw only in the set"
    assert machine.summary(None) == machine.summary({}) == "not recorded"
    assert machine.summary(avx2).startswith(avx2["fingerprint"] + ": GenuineIntel Intel")
