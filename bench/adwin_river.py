"""River's ADWIN on the sequences bench/adwin-river.ts writes (a JSON list of {name, values}).
Prints JSON: for each sequence, the indices where River detected drift and the window width right
after each detection."""
import json, sys
from river import drift

def main(path, delta, clock, max_buckets, min_window_length, grace_period):
    out = []
    for sequence in json.load(open(path)):
        adwin = drift.ADWIN(delta=delta, clock=clock, max_buckets=max_buckets, min_window_length=min_window_length, grace_period=grace_period)
        detections, widths = [], []
        for i, value in enumerate(sequence['values']):
            adwin.update(value)
            if adwin.drift_detected:
                detections.append(i)
                widths.append(adwin.width)
        out.append({'name': sequence['name'], 'detections': detections, 'widths': widths, 'estimation': adwin.estimation, 'width': adwin.width})
    print(json.dumps(out))

if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
