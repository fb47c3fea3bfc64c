"""Tiny nets for tests, importable as `tiny_models:<factory>` model names."""
import torch
import torch.nn as nn
import torchvision


def tiny_cnn(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def tiny_mobilenet(num_classes: int = 10) -> nn.Module:
    """Depthwise-separable blocks with inverted residuals and squeeze-free heads."""
    return torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=0.25)


def tiny_densenet(num_classes: int = 10) -> nn.Module:
    """Concatenating dense blocks."""
    return torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                       bn_size=2, num_classes=num_classes)


def tiny_efficientnet(num_classes: int = 10) -> nn.Module:
    """Depthwise convs with squeeze-excite gates."""
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    settings, _ = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return EfficientNet(settings, dropout=0.0, num_classes=num_classes)


def not_a_model(num_classes: int = 10):
    return "nope"


def dies_once(num_classes: int = 10):
    """Kills its own process the first time it is built (a worker crash), then works.
    The marker file is named by $EDGEPRUNE_TEST_MARKER."""
    import os
    import signal
    marker = os.environ["EDGEPRUNE_TEST_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return tiny_cnn(num_classes)


def always_dies(num_classes: int = 10):
    import os
    import signal
    os.kill(os.getpid(), signal.SIGKILL)


class _ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm over channels and a Linear MLP, as in ConvNeXt: the
    conv's channels are coupled with Linear layers."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


def tiny_convnext(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), _ConvNeXtBlock(16), _ConvNeXtBlock(16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def int8_hostile_cnn(num_classes: int = 10) -> nn.Module:
    """tiny_cnn with its classifier made quantization-hostile by construction: channel 15
    of the last conv is dead (its BatchNorm scale 0 and bias -1: ReLU gives 0 whatever
    the input, in training and in eval; its conv weights large, so that magnitude
    pruning keeps it), and every class weighs it 1e4. The fp32 network never sees those
    weights; int8, quantizing each class's weights on one scale, rounds every other
    weight of the classifier to zero. Fine-tuning keeps it so (a dead channel gets no
    gradient)."""
    net = tiny_cnn(num_classes)
    with torch.no_grad():
        net[3].weight[15] = 1.0
        net[4].weight[15], net[4].bias[15] = 0.0, -1.0
        net[8].weight[:, 15] = 1e4
    return net


def tiny_cnn3(num_classes: int = 10) -> nn.Module:
    """Three convs: the first two can lose channels (tiny_cnn's only inner conv cannot)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))
