# Reads a TensorBoard log directory with TensorBoard's own readers, the reference for rpo's event
# writer (lib/train/tensorboard.ts).
#
# argv: the log directory.
# stdout: JSON {"files": [...], "records": n (every record of every file, each CRC checked by
#   TensorBoard's PyRecordReader), "file_version": the first event's, "scalars": {tag: [[step,
#   value], ...]}, "text": {tag: [[step, text], ...]}, "served": {tag: [[step, value], ...]}} with
#   values as TensorBoard holds them (float32 widened to float64; NaN/inf as strings "nan", "inf",
#   "-inf"). "scalars" and "text" come from event_accumulator; "served" are the scalars of
#   plugin_event_accumulator, which the TensorBoard server reads (its own restart rules).
import glob
import json
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.util import tensor_util


def num(v):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def main():
    logdir = sys.argv[1]
    files = sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))
    records = 0
    file_version = None
    for f in files:
        reader = pywrap_tensorflow.PyRecordReader_New(f.encode(), 0, b"", None)
        while True:
            try:
                reader.GetNext()  # raises DataLossError on a CRC mismatch or a torn record
            except pywrap_tensorflow.errors.OutOfRangeError:
                break
            ev = event_pb2.Event.FromString(reader.record())
            if records == 0:
                file_version = ev.file_version
            records += 1
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [[e.step, num(e.value)] for e in acc.Scalars(t)] for t in tags["scalars"]}
    text = {}
    for t in tags["tensors"]:
        text[t] = [[e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")] for e in acc.Tensors(t)]
    served_acc = plugin_event_accumulator.EventAccumulator(logdir, size_guidance={"tensors": 0})
    served_acc.Reload()
    served = {}
    for t in served_acc.Tags()["tensors"]:
        if served_acc.SummaryMetadata(t).plugin_data.plugin_name != "scalars":
            continue
        served[t] = [[e.step, num(float(tensor_util.make_ndarray(e.tensor_proto).item()))] for e in served_acc.Tensors(t)]
    json.dump({"files": [os.path.basename(f) for f in files], "records": records, "file_version": file_version, "scalars": scalars, "text": text, "served": served}, sys.stdout)


main()
