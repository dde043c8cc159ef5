"""tf-keras-vis as the reference the CAM tests compare against: its raw maps at the layer's
resolution (no upsampling), normalised per map the way `explain` normalises."""

import numpy as np
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.layercam import Layercam
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import CategoricalScore

from explain.cams import normalize_maps

TKV = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "layercam": Layercam}


def tf_keras_vis_raw(model, images, layer, targets, method="gradcam", logits=False):
    """`method`'s maps at `layer` for class `targets`; `logits`: score the pre-softmax output."""
    visualizer = TKV[method](model, model_modifier=ReplaceToLinear() if logits else None)
    maps = visualizer(
        CategoricalScore([int(t) for t in targets]),
        images,
        penultimate_layer=layer,
        seek_penultimate_conv_layer=False,
        expand_cam=False,
        normalize_cam=False,
    )
    return normalize_maps(np.asarray(maps, np.float32)).numpy()
