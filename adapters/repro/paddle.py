# gnv repro snippet: PaddlePaddle's paddle.nn.functional.group_norm on the CPU, as
# adapters/paddle_runner.py calls it: data_format NCHW-style for nchw, channels last for nhwc.
import paddle
import paddle.nn.functional as F

paddle.set_device("cpu")
FRAMEWORK = f"paddlepaddle {paddle.__version__} (CPU)"


def group_norm(x, groups, gamma, beta, eps, layout):
    last = layout == "nhwc" and x.ndim > 2
    fmt = ({2: "NLC", 3: "NLC", 4: "NHWC", 5: "NDHWC"} if last else {2: "NCL", 3: "NCL", 4: "NCHW", 5: "NCDHW"})[x.ndim]
    t = paddle.to_tensor(np.ascontiguousarray(np.moveaxis(x, 1, -1) if last else x))
    w = None if gamma is None else paddle.to_tensor(gamma)
    b = None if beta is None else paddle.to_tensor(beta)
    y = F.group_norm(t, groups, epsilon=eps, weight=w, bias=b, data_format=fmt).numpy()
    return np.moveaxis(y, -1, 1) if last else y


def group_norm_backward(x, dy, groups, gamma, beta, eps, layout):
    last = layout == "nhwc" and x.ndim > 2
    fmt = ({2: "NLC", 3: "NLC", 4: "NHWC", 5: "NDHWC"} if last else {2: "NCL", 3: "NCL", 4: "NCHW", 5: "NCDHW"})[x.ndim]
    t = paddle.to_tensor(np.ascontiguousarray(np.moveaxis(x, 1, -1) if last else x))
    t.stop_gradient = False
    d = paddle.to_tensor(np.ascontiguousarray(np.moveaxis(dy, 1, -1) if last else dy))
    w = None if gamma is None else paddle.to_tensor(gamma)
    b = None if beta is None else paddle.to_tensor(beta)
    y = F.group_norm(t, groups, epsilon=eps, weight=w, bias=b, data_format=fmt)
    (y.astype("float64") * d.astype("float64")).sum().backward()
    dx = t.grad.numpy()
    return np.moveaxis(dx, -1, 1) if last else dx
