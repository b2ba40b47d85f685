"""Identity similarity as Ingredients (Sec. 4.1) defines it: every face detected in the generated frames is matched
to the reference faces by a greedy one-to-one matching per frame, and the minimum similarity over all matches is
reported (the weakest-kept identity decides).

Toy faces: the toy annotator detects faces (its "face" class, connected components) and the toy identity encoder
embeds them. Real faces: dlib's detector and 128-d ResNet embedding (`pip install 'cinetune[faces]'`)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import CinetuneError


def greedy_match(sim: np.ndarray) -> list[tuple[int, int, float]]:
    """One-to-one matching of rows (detections) to columns (references), highest similarity first."""
    pairs = sorted(((float(sim[i, j]), i, j) for i in range(sim.shape[0]) for j in range(sim.shape[1])), reverse=True)
    used_i, used_j, out = set(), set(), []
    for s, i, j in pairs:
        if i not in used_i and j not in used_j:
            out.append((i, j, s))
            used_i.add(i)
            used_j.add(j)
    return out


def identity_similarity(frame_embeddings: list[np.ndarray], references: np.ndarray, similarity=None) -> dict[str, float]:
    """frame_embeddings: per frame (n_faces, D) embeddings; references (R, D); similarity(a, b) -> (n, R) matrix
    (default: dot product of unit embeddings, i.e. cosine).
    Returns min (Ingredients' score) and mean matched cosine, and the fraction of frames with a face; the scores
    are 0 when no face was detected at all (identity not kept)."""
    sim_fn = similarity or (lambda a, b: a @ b.T)
    sims = [s for e in frame_embeddings if len(e) for _, _, s in greedy_match(sim_fn(np.asarray(e), np.asarray(references)))]
    found = float(np.mean([len(e) > 0 for e in frame_embeddings])) if frame_embeddings else 0.0
    if not sims:
        return {"face_sim_min": 0.0, "face_sim_mean": 0.0, "face_found": found}
    return {"face_sim_min": float(min(sims)), "face_sim_mean": float(np.mean(sims)), "face_found": found}


class ToyFaces:
    """Toy face detection (annotator 'face' class) + toy identity embeddings."""

    MIN_AREA = 6

    def __init__(self):
        from ..toynets import load_toy_net
        from ..toyworld.roster import CLASS_ID

        self.annotator = load_toy_net("annotator")
        self.encoder = load_toy_net("identity_encoder")
        self.face_class = CLASS_ID["face"]

    @torch.no_grad()
    def detect(self, video: np.ndarray) -> list[np.ndarray]:
        """Per frame (n,4) boxes x0,y0,x1,y1 of connected face regions."""
        from ..conditions.dense import _toy_frames

        labels = self.annotator(_toy_frames(np.asarray(video)))["classes"].argmax(1).numpy()
        out = []
        for lab in labels:
            n, _, stats, _ = cv2.connectedComponentsWithStats((lab == self.face_class).astype(np.uint8), connectivity=8)
            b = [(x, y, x + w, y + h) for x, y, w, h, a in stats[1:] if a >= self.MIN_AREA]
            out.append(np.array(b, np.float32).reshape(-1, 4))
        return out

    @torch.no_grad()
    def embed(self, video: np.ndarray, boxes: list[np.ndarray]) -> list[np.ndarray]:
        from ..toynets import crop_faces

        frames = torch.from_numpy(np.asarray(video)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        out = []
        for f, b in zip(frames, boxes):
            if not len(b):
                out.append(np.zeros((0, self.encoder.config.dim), np.float32))
                continue
            crops = crop_faces(f[None].expand(len(b), -1, -1, -1), torch.from_numpy(b), self.encoder.config.crop)
            out.append(self.encoder(crops).numpy())
        return out

    def video_embeddings(self, video: np.ndarray) -> list[np.ndarray]:
        return self.embed(video, self.detect(video))

    def reference_embeddings(self, identities: list[int]) -> np.ndarray:
        """Toy references: the rendered reference portrait of each roster identity."""
        from ..toynets import reference_face

        with torch.no_grad():
            return self.encoder(torch.stack([reference_face(i, self.encoder.config.crop) for i in identities])).numpy()


class DlibFaces:
    """Real faces: dlib HOG detector, 5-point alignment and the 128-d ResNet embedding (distances under 0.6 mean
    the same person; similarity here is 1 - distance so that larger is better as with the toy encoder)."""

    def __init__(self):
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError:
            raise CinetuneError("real-face identity needs dlib: pip install 'cinetune[faces]'") from None
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def _faces(self, image: np.ndarray) -> np.ndarray:
        img = np.ascontiguousarray(image)
        dets = self.detector(img, 1)
        return np.array([np.asarray(self.net.compute_face_descriptor(img, self.shape(img, d))) for d in dets],
                        np.float32).reshape(-1, 128)

    def video_embeddings(self, video: np.ndarray) -> list[np.ndarray]:
        return [self._faces(f) for f in np.asarray(video)]

    def reference_embeddings_from_images(self, images: list[np.ndarray]) -> np.ndarray:
        embs = []
        for i, img in enumerate(images):
            e = self._faces(img)
            if not len(e):
                raise CinetuneError(f"reference image {i}: no face detected")
            embs.append(e[0])
        return np.stack(embs)

    @staticmethod
    def similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 1.0 - np.linalg.norm(a[:, None] - b[None], axis=-1)
