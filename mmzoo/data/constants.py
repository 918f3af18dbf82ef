"""Constants that models and data share: class lists, normalisation, audio front-end settings.

The ground floor of :mod:`mmzoo.data`: it imports nothing else from mmzoo (and nothing heavy), so
:mod:`mmzoo.models` may import it, as timm's ``data/constants.py``. Each value cites where it is
stated.
"""
from __future__ import annotations

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "KINETICS_MEAN", "KINETICS_STD",
    "AVE_CLASSES", "AVE_BACKGROUND", "AVE_NUM_SEGMENTS",
    "VID_WNIDS", "VID_CLASSES",
    "AVSLOWFAST_AUDIO", "AVSLOWFAST_LOGMEL_MEAN", "AVSLOWFAST_LOGMEL_STD",
    "VGGISH_SAMPLE_RATE", "VGGISH_WINDOW_SECONDS", "VGGISH_HOP_SECONDS", "VGGISH_NUM_BANDS",
    "VGGISH_MEL_MIN_HZ", "VGGISH_MEL_MAX_HZ", "VGGISH_LOG_OFFSET", "VGGISH_NUM_FRAMES", "VGGISH_EMBEDDING_SIZE",
]

# -- pixel normalisation (RGB, values in [0, 1]) ------------------------------------------------
#: torchvision / timm ImageNet statistics (R-FCN / STMN and the AVE visual extractor).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: SlowFast / AVSlowFast Kinetics statistics (thesis ch. 4; PySlowFast's DATA.MEAN / DATA.STD).
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)

# -- AVE (audio-visual event localisation, thesis ch. 3) ----------------------------------------
#: The 28 AVE event categories in the order of the released annotation files.
AVE_CLASSES: tuple[str, ...] = (
    "Church bell",
    "Male speech, man speaking",
    "Bark",
    "Fixed-wing aircraft, airplane",
    "Race car, auto racing",
    "Female speech, woman speaking",
    "Helicopter",
    "Violin, fiddle",
    "Flute",
    "Ukulele",
    "Frying (food)",
    "Truck",
    "Shofar",
    "Motorcycle",
    "Acoustic guitar",
    "Train horn",
    "Clock",
    "Banjo",
    "Goat",
    "Baby cry, infant cry",
    "Bus",
    "Chainsaw",
    "Cat",
    "Horse",
    "Toilet flush",
    "Rodents, rats, mice",
    "Accordion",
    "Mandolin",
)
#: Index of the background class (the 29th output of the AVE models).
AVE_BACKGROUND = 28
#: One-second segments per AVE video.
AVE_NUM_SEGMENTS = 10

# -- ImageNet VID --------------------------------------------------------------------------------
#: The 30 VID synsets in the devkit order (ILSVRC2015_VID_ID 1..30).
VID_WNIDS = (
    "n02691156", "n02419796", "n02131653", "n02834778", "n01503061", "n02924116", "n02958343", "n02402425",
    "n02084071", "n02121808", "n02503517", "n02118333", "n02510455", "n02342885", "n02374451", "n02129165",
    "n01674464", "n02484322", "n03790512", "n02324045", "n02509815", "n02411705", "n01726692", "n02355227",
    "n02129604", "n04468005", "n01662784", "n04530566", "n02062744", "n02391049",
)
VID_CLASSES = (
    "airplane", "antelope", "bear", "bicycle", "bird", "bus", "car", "cattle", "dog", "domestic_cat",
    "elephant", "fox", "giant_panda", "hamster", "horse", "lion", "lizard", "monkey", "motorcycle", "rabbit",
    "red_panda", "sheep", "snake", "squirrel", "tiger", "train", "turtle", "watercraft", "whale", "zebra",
)

# -- audio front ends ----------------------------------------------------------------------------
#: AVSlowFast log-mel front end (thesis ch. 4: 16 kHz, 32 ms window, 16 ms hop, 80 mel bins;
#: FFT size, mel scale and log offset from the authors' public code).
AVSLOWFAST_AUDIO = {
    "sample_rate": 16000,
    "window_ms": 32.0,
    "hop_ms": 16.0,
    "n_fft": 512,
    "n_mels": 80,
    "mel_scale": "htk",
    "log_offset": 1e-8,
}
#: Log-mel normalisation constants of the AVSlowFast public code.
AVSLOWFAST_LOGMEL_MEAN = -7.03
AVSLOWFAST_LOGMEL_STD = 4.66

#: VGGish (Hershey et al. 2017) front end, as in the AudioSet release's ``vggish_params``.
VGGISH_SAMPLE_RATE = 16000
VGGISH_WINDOW_SECONDS = 0.025
VGGISH_HOP_SECONDS = 0.010
VGGISH_NUM_BANDS = 64
VGGISH_MEL_MIN_HZ = 125.0
VGGISH_MEL_MAX_HZ = 7500.0
VGGISH_LOG_OFFSET = 0.01
VGGISH_NUM_FRAMES = 96  # 0.96 s examples
VGGISH_EMBEDDING_SIZE = 128
