# Hydra's own composition of a table of cases, the reference for rpo's config layer.
#
# stdin: a JSON list of {"dir": config dir (absolute), "name": config name, "overrides": [...],
#        "env": {VAR: value}}.
# stdout: a JSON list, one object per case:
#   {"value": the composed config, unresolved (OmegaConf.to_container(resolve=False)),
#    "yaml": what `--cfg job` prints (OmegaConf.to_yaml of the job config),
#    "resolved": the config resolved (to_container(resolve=True)) or null,
#    "resolved_yaml": what `--cfg job --resolve` prints, or null,
#    "resolve_error": why resolving failed, or null}
#   or {"error": "<exception type>: <message>"} when Hydra refuses the composition.
import json
import os
import sys

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf


def one(case):
    GlobalHydra.instance().clear()
    saved = dict(os.environ)
    os.environ.update(case.get("env", {}))
    try:
        with initialize_config_dir(config_dir=case["dir"], version_base=None):
            cfg = compose(config_name=case["name"], overrides=case["overrides"])
        out = {
            "value": OmegaConf.to_container(cfg, resolve=False),
            # Hydra's --cfg job: the composed config less the hydra node, to_yaml, unresolved.
            "yaml": OmegaConf.to_yaml(cfg),
            "resolved": None,
            "resolved_yaml": None,
            "resolve_error": None,
        }
        try:
            out["resolved"] = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
            out["resolved_yaml"] = OmegaConf.to_yaml(cfg, resolve=True)
        except Exception as e:  # noqa: BLE001 - the reason is the output
            out["resolve_error"] = f"{type(e).__name__}: {e}"
        return out
    except Exception as e:  # noqa: BLE001 - the reason is the output
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main():
    cases = json.load(sys.stdin)
    json.dump([one(c) for c in cases], sys.stdout, allow_nan=False)


if __name__ == "__main__":
    main()
