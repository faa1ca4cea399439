"""River's LogisticRegression on the same stream the intent model sees (events with features and
session summaries, in pipeline order), with the same label delays: a prediction at every event of a
session before its first purchase; all of a session's labels at its summary (1 if it bought), as
intent-model labels them, and none for a session the input's end (or max_open_sessions) cut: censored,
as intent-model does.
Prints JSON: prequential AUC (exact), log loss, Brier, n, positives, and learn+predict samples/s."""
import json, math, sys, time
from river import linear_model, optim, preprocessing, compose

def exact_auc(scores, labels):
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    pos = 0; rank_sum = 0.0; i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]: j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            if labels[order[k]]: pos += 1; rank_sum += rank
        i = j + 1
    neg = len(scores) - pos
    return None if pos == 0 or neg == 0 else (rank_sum - pos * (pos + 1) / 2) / (pos * neg)

def main(path, lr, prior=None):
    # prior: start the intercept at its log-odds, as intent-model's `model.prior` does (a fair comparison).
    intercept = math.log(prior / (1 - prior)) if prior else 0.0
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(optimizer=optim.SGD(lr), intercept_init=intercept))
    sessions = {}  # id -> {'labelled': bool, 'pending': [(x, score)]}
    scores, labels = [], []
    busy = 0.0; ops = 0
    def label(state, y):
        nonlocal busy, ops
        for x, s in state['pending']:
            scores.append(s); labels.append(y)
            t = time.perf_counter(); model.learn_one(x, y); busy += time.perf_counter() - t; ops += 1
        state['pending'] = []; state['labelled'] = True
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r['kind'] == 'event':
                sid = r.get('session', {}).get('id') or r.get('sessionId')
                if sid is None: continue
                st = sessions.setdefault(sid, {'labelled': False, 'pending': []})
                if st['labelled'] or st.get('bought'): continue
                if r['type'] == 'purchase': st['bought'] = True; continue
                x = r.get('features')
                if not x: continue
                t = time.perf_counter(); s = model.predict_proba_one(x).get(True, 0.0); busy += time.perf_counter() - t
                st['pending'].append((x, s))
            elif r['kind'] == 'session':
                st = sessions.pop(r['sessionId'], None)
                if r.get('closedBy') in ('end_of_input', 'evicted'): continue  # censored: its outcome is not known
                if st and not st['labelled']: label(st, 1 if r['purchased'] or st.get('bought') else 0)
    eps = 1e-7
    ll = sum(-math.log(max(eps, s)) if y else -math.log(max(eps, 1 - s)) for s, y in zip(scores, labels)) / len(scores)
    brier = sum((s - y) ** 2 for s, y in zip(scores, labels)) / len(scores)
    print(json.dumps({'model': 'river LogisticRegression (StandardScaler, SGD %g%s)' % (lr, ', intercept at prior %g' % prior if prior else ''), 'auc': exact_auc(scores, labels), 'logloss': ll, 'brier': brier,
                      'n': len(scores), 'positives': sum(labels), 'samples_per_s': ops / busy if busy else None}))

if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.01, float(sys.argv[3]) if len(sys.argv) > 3 else None)
