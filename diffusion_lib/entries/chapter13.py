"""The zoo models of chapter 13: a miniature DALL·E 2 (unCLIP) of the captioned scenes — a
diffusion prior from scenes-clip's text embeddings to its image embeddings, a latent decoder
from image embeddings to scenes, and the pipeline that chains them."""

from ..families.unclip import DecoderSpec, PriorSpec, UnclipSpec
from ..train import TrainConfig
from ..zoo import DataSpec, ZooEntry, register

# The captioned one-object scenes of the "train" split that scenes-ldm trains on (chapter 12),
# so that the two text-to-image designs see the same data.
SCENES = DataSpec.dataset("scene-captions", n1=20_000, n2=0, seed=1)

register(
    ZooEntry(
        name="scenes-unclip-prior",
        description="unCLIP's diffusion prior: scenes-clip text embedding → image embedding (an MLP "
        "denoiser predicting the clean embedding); chapter 13",
        family="clip-prior",
        spec=PriorSpec(
            network={
                "embed_dim": 64,  # scenes-clip's embedding width
                "hidden": 512,
                "num_layers": 4,
                "time_dim": 64,
            },
            clip="scenes-clip",
            schedule="cosine",  # Nichol & Dhariwal's; DALL·E 2's prior uses it too
            num_timesteps=1000,
            prediction_type="x0",  # DALL·E 2: "we find it better to predict the unnoised z_i directly"
            text_dropout=0.1,  # DALL·E 2 drops the text conditioning 10% of the time
            guidance_scale=1.0,
        ),
        depends_on=("scenes-clip",),
        data=SCENES,
        sample_shape=(64,),
        # 4000 steps of 256: 114 s here (2 threads); held-out cosine to the true image embedding
        # 0.976, against 0.939 for the text embedding itself.
        train=TrainConfig(steps=4000, batch_size=256, lr=1e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,  # fixed, as for the other models: the thread count changes the rounding
        chapter=13,
    )
)
register(
    ZooEntry(
        name="scenes-unclip-decoder",
        description="unCLIP's decoder: latent diffusion on scenes-vae's latents conditioned on a "
        "scenes-clip image embedding; chapter 13",
        family="unclip-decoder",
        spec=DecoderSpec(
            # scenes-ldm's U-Net (chapter 12), its context one token: the image embedding.
            network={
                "in_channels": 4,  # scenes-vae's latents: 4 × 8 × 8
                "image_size": 8,
                "base_channels": 32,
                "channel_mults": [1, 2],
                "num_res_blocks": 1,
                "attention_resolutions": [4],
                "context_dim": 64,  # scenes-clip's embedding width
                "scale_shift": True,
                "pooled_context": True,  # the embedding added to the timestep embedding, as in DALL·E 2
            },
            autoencoder="scenes-vae",
            clip="scenes-clip",
            schedule="ldm",  # scenes-ldm's
            embedding_dropout=0.1,  # DALL·E 2's decoder drops the CLIP embedding 10% of the time
            # s = 5: the digit of 128 training scenes decoded from their own embeddings right in
            # 87.5% of images, against 83.6% at s = 3, 87.5% at s = 8 and 40.6% at s = 1; the
            # pipeline's digit 91.7% of 96 images of training prompts (shift 0, s = 3: 86.7%).
            guidance_scale=5.0,
        ),
        depends_on=("scenes-vae", "scenes-clip"),
        data=SCENES,
        sample_shape=(3, 32, 32),
        # 1500 steps of 128, as scenes-ldm: 274 s here (2 threads).
        train=TrainConfig(steps=1500, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999),
        train_threads=2,
        chapter=13,
    )
)
register(
    ZooEntry(
        name="scenes-unclip",
        description="the unCLIP pipeline: scenes-unclip-prior then scenes-unclip-decoder (text → image "
        "embedding → image); chapter 13",
        family="unclip",
        spec=UnclipSpec(prior="scenes-unclip-prior", decoder="scenes-unclip-decoder"),
        depends_on=("scenes-unclip-prior", "scenes-unclip-decoder"),
        # The pipeline trains nothing; the zoo asks every entry for data, and this is the
        # smallest: one scene, never read.
        data=DataSpec.dataset("scene-captions", n1=1, n2=0, seed=1),
        sample_shape=(3, 32, 32),
        train=TrainConfig(steps=1, batch_size=1),  # no step is taken
        train_threads=2,
        chapter=13,
    )
)
