"""The machine a run trained on, and its fingerprint: the facts that change kernels or speed.

The same release, seed and data trained on two CPUs gave different numerics (oneDNN picks
other kernels with AVX-512 than with AVX2) and a step time 26 times shorter, and nothing
in a result set said the machines differed: both were called `vm`, both said `x86_64`.
So every result set records, in environment.json's `machine`:

- the CPU: vendor, model name, family and model number, and the instruction-set features
  that change which kernels TensorFlow and oneDNN pick (`KERNEL_FEATURES`);
- the logical CPUs this process may run on (its affinity: `taskset -c 0` halves a 2-core
  machine), the cgroup CPU quota (a container's `--cpus`), the logical and physical CPUs
  of the machine, and its memory;
- the settings that pick kernels or threads: TF_ENABLE_ONEDNN_OPTS, ONEDNN_MAX_CPU_ISA,
  TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS, OMP_NUM_THREADS ("" when unset);
- the GPUs this process may use, from nvidia-smi (catsdogs.training.devices): model,
  memory, compute capability, and the driver.

The fingerprint is the first 12 hex digits of the sha256 of `FINGERPRINT_FACTS`; not the
host name (every machine here is called `vm`), not which CPUs the affinity names (CPUs 0
and 1 of one machine are alike), not the exact memory in bytes (rounded to GiB).

The CPU comes from py-cpuinfo (pytest-benchmark's own machine_info uses it, so it is
installed with the test extras anyway): one maintained parser for /proc/cpuinfo, cpuid,
sysctl and the registry, which keeps this module free of per-OS parsing. Memory and the
physical cores come from psutil, for the same reason (os has neither). Affinity, quota and
environment need neither. Every fact is computed by a function that takes its raw input
(a cpuinfo dict, a CPU set, nvidia-smi's CSV, cgroup text), so tests can pass stand-ins
for what a machine lacks (a GPU, AMX). Nothing here imports TensorFlow, so `--resume`
can check the machine before TensorFlow loads.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from catsdogs.training.devices import nvidia_smi, visible_gpus

#: CPU features whose presence changes the kernels TensorFlow/oneDNN/Eigen run (x86 SIMD
#: widths, FMA, the AVX-512 family, VNNI and BF16 dot products, AMX tiles; Arm's NEON,
#: SVE and its dot-product/matrix extensions). Named as Linux' /proc/cpuinfo names them.
KERNEL_FEATURES = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512ifma", "avx512vbmi",
    "avx512_vbmi2", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512_bitalg",
    "avx512_vpopcntdq", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16",
    "asimd", "asimddp", "sve", "sve2", "bf16", "i8mm",
)
#: Environment variables that select kernels (oneDNN on or off, its ISA cap) or threads.
ENV_FACTS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
#: What the fingerprint hashes: every fact that changes kernels or speed.
FINGERPRINT_FACTS = ("cpu_vendor", "cpu_model", "cpu_family", "cpu_model_number",
                     "cpu_features", "cpus_usable", "cpu_quota", "logical_cpus",
                     "physical_cores", "memory_gib", "environment", "gpus", "gpu_driver")
#: How each fingerprint fact is named when two machines differ in it.
FACT_LABELS = {"cpu_vendor": "CPU vendor", "cpu_model": "CPU model",
               "cpu_family": "CPU family", "cpu_model_number": "CPU model number",
               "cpu_features": "CPU features", "cpus_usable": "usable CPUs (affinity)",
               "cpu_quota": "CPU quota", "logical_cpus": "logical CPUs",
               "physical_cores": "physical cores", "memory_gib": "memory GiB",
               "environment": "settings", "gpus": "GPUs", "gpu_driver": "GPU driver"}
#: Facts that change numerics, not only speed: which kernels run (the CPU and its
#: features: oneDNN dispatches on the ISA and blocks for the caches of the model; the
#: settings; the GPUs and driver) and how work is split (the usable CPUs set TensorFlow's
#: thread pools, and a run pinned to one CPU parted from an unpinned one at epoch 1 on
#: this project's machine). Memory, physical cores and the quota are left out. The
#: identity line names these when two machines' runs diverge.
KERNEL_FACTS = ("cpu_vendor", "cpu_model", "cpu_family", "cpu_model_number", "cpu_features",
                "cpus_usable", "logical_cpus", "environment", "gpus", "gpu_driver")
#: nvidia-smi's fields for each GPU; compute_cap needs a driver from 2022 on (510+).
GPU_QUERY = ("index", "uuid", "name", "memory.total", "driver_version", "compute_cap")
NOT_RECORDED = "not recorded"


# ---------------------------------------------------------------- the CPU


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """py-cpuinfo's description of this CPU, {} when it cannot tell (the facts are then
    empty, never a failed run). Cached: the CPU does not change while a process runs."""
    try:
        import cpuinfo

        return dict(cpuinfo.get_cpu_info())
    except Exception:  # an unknown platform or a failing probe: record nothing, go on
        return {}


def cpu_facts(info: Mapping[str, Any]) -> dict[str, Any]:
    """Vendor, model name, family/model number and the kernel-relevant features of a
    py-cpuinfo dict. py-cpuinfo lists a feature under the kernel's name (avx512_vnni), its
    cpuid name (avx512vnni) or both; either counts."""
    flags = {str(flag).lower() for flag in info.get("flags", ())}
    features = [name for name in KERNEL_FEATURES
                if name in flags or name.replace("_", "") in flags]
    return {"cpu_vendor": str(info.get("vendor_id_raw", "") or ""),
            "cpu_model": str(info.get("brand_raw", "") or ""),
            "cpu_arch": str(info.get("arch_string_raw", "") or ""),
            "cpu_family": info.get("family"), "cpu_model_number": info.get("model"),
            "cpu_stepping": info.get("stepping"), "cpu_features": features}


# ---------------------------------------------------------------- CPUs and memory


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity), sorted; every CPU where
    the platform has no affinity call (macOS)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_ranges(cpus: Iterable[int]) -> str:
    """'0-3,6' for CPUs 0, 1, 2, 3 and 6: as taskset and /proc write CPU lists."""
    ranges: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def cgroup_cpu_quota(cpu_max: str | None) -> str:
    """CPUs a cgroup v2 `cpu.max` ('200000 100000': 2 CPUs; 'max 100000': no limit)
    allows, as text ('2', '0.5'); '' for no limit or no cgroup v2."""
    fields = (cpu_max or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return ""
    try:
        return f"{int(fields[0]) / int(fields[1]):g}"
    except (ValueError, ZeroDivisionError):
        return ""


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def cpu_count_facts(cpus: Iterable[int], logical: int | None, physical: int | None,
                    cpu_max: str | None) -> dict[str, Any]:
    """How many CPUs the process may use and the machine has."""
    cpus = sorted(set(cpus))
    return {"cpus_usable": len(cpus), "cpu_affinity": cpu_ranges(cpus),
            "cpu_quota": cgroup_cpu_quota(cpu_max), "logical_cpus": logical,
            "physical_cores": physical}


def memory_facts(total_bytes: int | None) -> dict[str, Any]:
    """Memory in bytes, and rounded to whole GiB for the fingerprint (the kernel's own
    reservation moves the exact total between boots of one machine)."""
    if not total_bytes:
        return {"memory_bytes": None, "memory_gib": None}
    return {"memory_bytes": int(total_bytes), "memory_gib": round(total_bytes / 2**30)}


def _psutil_counts() -> tuple[int | None, int | None]:
    """(physical cores, memory bytes) from psutil; (None, None) without it."""
    try:
        import psutil

        return psutil.cpu_count(logical=False), psutil.virtual_memory().total
    except Exception:  # psutil missing or unsupported here: record nothing, go on
        return None, None


# ---------------------------------------------------------------- settings and GPUs


def environment_facts(environ: Mapping[str, str]) -> dict[str, str]:
    """The kernel and thread settings, '' where unset (TensorFlow's default then)."""
    return {name: environ.get(name, "") for name in ENV_FACTS}


def gpu_facts(smi_csv: str, visible: list[str] | None) -> dict[str, Any]:
    """The GPUs of `nvidia-smi --query-gpu=GPU_QUERY --format=csv,noheader,nounits` this
    process may use (`visible`: CUDA_VISIBLE_DEVICES' indices or UUIDs; None for all),
    each as model, memory (MiB) and compute capability, and the driver."""
    gpus, drivers = [], []
    for line in smi_csv.strip().splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) < 5:
            continue
        index, uuid, name, memory, driver = cells[:5]
        if visible is not None and not any(v in (index, uuid) or (v.startswith("GPU-")
                                                                 and uuid.startswith(v))
                                           for v in visible):
            continue
        gpus.append({"model": name, "memory_mib": int(memory) if memory.isdigit() else None,
                     "compute_capability": cells[5] if len(cells) > 5 else ""})
        drivers.append(driver)
    return {"gpu_count": len(gpus), "gpus": gpus,
            "gpu_driver": ", ".join(dict.fromkeys(drivers))}


def query_gpus() -> str:
    """nvidia-smi's CSV of GPU_QUERY, retried without compute_cap for drivers that do not
    know it; '' without a driver."""
    for fields in (GPU_QUERY, GPU_QUERY[:-1]):
        out = nvidia_smi(f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits")
        if out.strip():
            return out
    return ""


# ---------------------------------------------------------------- all of it


def fingerprint(facts: Mapping[str, Any]) -> str:
    """12 hex digits over FINGERPRINT_FACTS: equal exactly when those facts are."""
    chosen = {key: facts.get(key) for key in FINGERPRINT_FACTS}
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def machine_facts(*, info: Mapping[str, Any] | None = None, cpus: Iterable[int] | None = None,
                  logical: int | None = None, physical: int | None = None,
                  memory_bytes: int | None = None, cpu_max: str | None = None,
                  environ: Mapping[str, str] | None = None, smi_csv: str | None = None
                  ) -> dict[str, Any]:
    """Every fact of this machine with its `fingerprint`; each argument replaces what the
    machine would be asked (tests pass stand-ins)."""
    if physical is None or memory_bytes is None:
        asked_physical, asked_memory = _psutil_counts()
        physical = asked_physical if physical is None else physical
        memory_bytes = asked_memory if memory_bytes is None else memory_bytes
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    facts: dict[str, Any] = {
        **cpu_facts(cpu_info() if info is None else info),
        **cpu_count_facts(usable_cpus() if cpus is None else cpus,
                          os.cpu_count() if logical is None else logical, physical,
                          _read("/sys/fs/cgroup/cpu.max") if cpu_max is None else cpu_max),
        **memory_facts(memory_bytes),
        "environment": environment_facts(environ),
        **gpu_facts(query_gpus() if smi_csv is None else smi_csv,
                    None if visible is None else visible_gpus(environ)),
    }
    facts["fingerprint"] = fingerprint(facts)
    return facts


# ---------------------------------------------------------------- what differs


def _shown(key: str, value: Any) -> str:
    """One fact as people read it in a difference."""
    if key == "gpus":
        return "; ".join(f"{g.get('model')} {g.get('memory_mib')} MiB cc "
                         f"{g.get('compute_capability') or '?'}" for g in value or []) or "none"
    if key == "environment":
        return " ".join(f"{k}={v}" for k, v in sorted((value or {}).items()) if v) or "defaults"
    return "none" if value in (None, "", []) else str(value)


def differences(base: Mapping[str, Any], candidate: Mapping[str, Any],
                keys: Iterable[str] = FINGERPRINT_FACTS,
                sides: tuple[str, str] = ("base", "candidate")) -> list[str]:
    """Each fingerprint fact that differs, as 'usable CPUs (affinity) 1 vs 2' (base value
    first); CPU features as the ones only one side has: 'CPU features avx512f, avx512bw
    only in candidate'; settings as the variables that differ. `sides` names the two."""
    found = []
    for key in keys:
        b, c = base.get(key), candidate.get(key)
        if b == c:
            continue
        label = FACT_LABELS.get(key, key)
        if key == "cpu_features":
            only_b = [f for f in b or [] if f not in (c or [])]
            only_c = [f for f in c or [] if f not in (b or [])]
            parts = ([f"{', '.join(only_b)} only in {sides[0]}"] if only_b else []) + \
                    ([f"{', '.join(only_c)} only in {sides[1]}"] if only_c else [])
            found.append(f"{label} {'; '.join(parts)}")
        elif key == "environment":
            names = sorted(set(b or {}) | set(c or {}))
            found += [f"{name} {(b or {}).get(name) or 'unset'} vs {(c or {}).get(name) or 'unset'}"
                      for name in names if (b or {}).get(name, "") != (c or {}).get(name, "")]
        else:
            found.append(f"{label} {_shown(key, b)} vs {_shown(key, c)}")
    return found


def summary(facts: Mapping[str, Any] | None) -> str:
    """One line for provenance and listings: 'a1b2c3d4e5f6: AuthenticAMD AMD EPYC (family
    25 model 17), 2 of 2 CPUs usable, 24 GiB, avx2 fma avx512f ...; no GPU'."""
    if not facts or not facts.get("fingerprint"):
        return NOT_RECORDED
    family = (f" (family {facts.get('cpu_family')} model {facts.get('cpu_model_number')})"
              if facts.get("cpu_family") is not None else "")
    quota = f", quota {facts['cpu_quota']} CPUs" if facts.get("cpu_quota") else ""
    settings = _shown("environment", facts.get("environment"))
    gpus = _shown("gpus", facts.get("gpus"))
    return (f"{facts['fingerprint']}: {facts.get('cpu_vendor') or '?'} "
            f"{facts.get('cpu_model') or '?'}{family}, {facts.get('cpus_usable')} of "
            f"{facts.get('logical_cpus')} CPUs usable{quota}, {facts.get('memory_gib')} GiB, "
            f"features {' '.join(facts.get('cpu_features') or []) or 'none known'}; "
            f"settings {settings}; "
            + ("no GPU" if gpus == "none" else f"GPUs {gpus}, driver {facts.get('gpu_driver')}"))
