# Yardstick on the device: the same learn + predict step (logistic, mlp 32-16, Adam; predict, read back,
# learn) in PyTorch on the GPU and its CPU, at the bench's batch sizes; 42 features, random data.
import time, torch
torch.manual_seed(1)
d = 42
def model(kind):
    if kind == "logistic":
        return torch.nn.Linear(d, 1)
    return torch.nn.Sequential(torch.nn.Linear(d, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
for dev in (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]:
    for kind in ("logistic", "mlp"):
        for size in (256, 1024, 4096, 16384):
            m = model(kind).to(dev)
            opt = torch.optim.Adam(m.parameters(), lr=0.01)
            X = torch.randn(32768 + size, d); Y = (torch.rand(32768 + size) < 0.1).float()
            loss_fn = torch.nn.BCEWithLogitsLoss()
            steps = max(1, 32768 // size)
            def run():
                for b in range(steps):
                    x = X[b * size:(b + 1) * size].to(dev); y = Y[b * size:(b + 1) * size].to(dev)
                    with torch.no_grad():
                        torch.sigmoid(m(x)).squeeze(1).cpu()
                    opt.zero_grad(); loss_fn(m(x).squeeze(1), y).backward(); opt.step()
                if dev == "cuda": torch.cuda.synchronize()
            run()
            times = []
            for _ in range(3):
                t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
            times.sort()
            print(f"torch {torch.__version__} {dev} {kind} batch {size}: {steps * size / times[1]:,.0f} samples/s", flush=True)
