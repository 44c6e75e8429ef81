# dlib's models, loaded by path (jndguard.core.models.dlib_resnet: the dlib-resnet port reads the
# ResNet weights, dlib finds the 5 landmarks; verify runs dlib itself): only the two files used. The
# 68-point landmark model (100 MB) and the CNN face detector are left out.
from PyInstaller.utils.hooks import get_package_paths

_, pkg = get_package_paths("face_recognition_models")
datas = [
    (f"{pkg}/models/{name}", "face_recognition_models/models")
    for name in ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")
]
