"""The papers' published figures that our tables are compared with, as data, each with its source.

000: Dziedzic et al., On the Difficulty of Defending Self-Supervised Learning against Model
Extraction, ICML 2022. 002: Liu et al., StolenEncoder, CCS 2022. Their settings differ from ours
(CIFAR10/SVHN/STL10/ImageNet victims, ResNet18-50, 9k-250k queries, GPUs), so the figures are
beside ours for their shape and direction, not for equality.
"""

from __future__ import annotations

# 000 Table 2: downstream accuracy (%) of copies stolen from a CIFAR10 victim with 9,000 queries
# of the CIFAR10 test set; columns: CIFAR10, STL10, SVHN downstream. (*) uses augmentations.
T000_2 = {
    "source": "000 Table 2 (CIFAR10 victim, 9,000 queries; downstream CIFAR10 / STL10 / SVHN)",
    "victim": (79.0, 67.9, 65.1),
    "rows": {
        "mse": (75.5, 64.8, 58.8),
        "infonce": (75.5, 64.6, 69.6),
        "softnn": (76.9, 67.1, 67.3),
        "wasserstein": (63.9, 50.8, 49.5),
        "supcon": (78.5, 63.1, 67.1),
        "barlow": (26.9, 26.6, 26.2),
    },
}

# 000 Table 4: the watermark ownership t-test on stolen copies.
T000_4 = {
    "source": "000 Table 4 (ResNet18 victims, direct extraction)",
    "rows": [  # dataset, queries, Δμ, p, t
        ("CIFAR10", "10K", 0.07, "6.34E-14", 9.81),
        ("CIFAR10", "50K", 0.11, "1.27E-21", 15),
        ("SVHN", "10K", 0.06, "2.59E-11", 8.22),
        ("SVHN", "50K", 0.09, "3E-15", 10.64),
    ],
}

# 000 Table 7: CIFAR10 downstream accuracy (%) by number of SVHN queries to a CIFAR10 victim.
T000_7 = {
    "source": "000 Table 7 (CIFAR10 victim 79.0, SVHN queries, CIFAR10 downstream)",
    "rows": {
        "softnn": {
            500: 39.3,
            1000: 40.0,
            5000: 55.5,
            10000: 60.4,
            20000: 67.2,
            30000: 70.8,
            50000: 70.9,
        },
        "mse": {
            500: 36.1,
            1000: 43.4,
            5000: 55.6,
            10000: 59.3,
            20000: 58.1,
            30000: 60.6,
            50000: 61.6,
        },
        "infonce": {
            500: 35.7,
            1000: 38.6,
            5000: 50.5,
            10000: 59.3,
            20000: 69.3,
            30000: 69.9,
            50000: 71.8,
        },
    },
}

# 000 Table 16: watermark success rate (%) of copies stolen with SVHN queries.
T000_16 = {
    "source": "000 Table 16 (watermark success rate, %, SVHN queries)",
    "rows": {
        "mse": {
            10000: 55.35,
            20000: 55.92,
            30000: 58.19,
            40000: 55.78,
            50000: 58.84,
            60000: 56.84,
            70000: 56.89,
        },
        "softnn": {
            10000: 55.82,
            20000: 55.32,
            30000: 54.5,
            40000: 56.68,
            50000: 57.11,
            60000: 57.58,
            70000: 59.53,
        },
        "infonce": {
            10000: 57.45,
            20000: 57.2,
            30000: 57.78,
            40000: 55.75,
            50000: 58.98,
            60000: 58.02,
            70000: 56.52,
        },
    },
    "random": "about 50 % for an independently trained encoder (000 §5.1)",
}

# 000 Table 17: watermark success rate (%) at 10,000 CIFAR10 queries by query augmentation.
T000_17 = {
    "source": "000 Table 17 (watermark success rate, %, 10,000 CIFAR10 queries)",
    "rows": {  # Standard, +Rotation, NoAug
        "mse": (54.69, 73.76, 54.61),
        "softnn": (55.48, 74.49, 56.45),
        "infonce": (56.53, 56.85, 57.0),
    },
}

# 000 Table 18: l2 distance between a model's and the victim's representations (CIFAR10 victim,
# CIFAR10 queries). "Random": same architecture and recipe, another seed.
T000_18 = {
    "source": "000 Table 18 (l2 distance to a CIFAR10 victim, raw representations)",
    "random": 34.1,
    "rows": {
        "mse": {9000: 26.6, 50000: 14.6},
        "infonce": {9000: 44, 50000: 40},
        "softnn": {9000: 14.4, 50000: 12.8},
    },
}

# 000 Table 19: mean noise spread of victim (V), random (R) and stolen (S) models; p1 for
# H0: μσS <= μσV, p2 for H0: μσR = μσV.
T000_19 = {
    "source": "000 Table 19 (CIFAR10 victim: μσV 0.0608, μσR 0.0605, p2 0.978)",
    "rows": [  # loss, queries, μσS, p1
        ("mse", 9000, 0.0197, 0.999),
        ("softnn", 9000, 0.0269, 0.999),
        ("infonce", 9000, 0.045, 0.973),
        ("mse", 50000, 0.029, 0.999),
        ("infonce", 50000, 0.021, 0.999),
        ("softnn", 50000, 0.048, 0.910),
    ],
}

# 000 Table 20: dataset inference on self-supervised (U) and supervised (S) models.
T000_20 = {
    "source": "000 Table 20 (dataset inference; U = self-supervised, S = supervised)",
    "rows": [  # model, learning, queries, Δμ, p, t
        ("SVHN", "U", 100, -0.17, "0.99", -2.90),
        ("SVHN", "U", 10000, -0.005, "0.79", -0.82),
        ("ImageNet", "U", 64, -0.005, "0.99", -2.53),
        ("ImageNet", "S", 64, 1.06, "1e-5", 4.03),
    ],
}

# 002 Table II: TA and SA (%) of StolenEncoder with FashionMNIST downstream (surrogate: 5 % of
# the pre-training set, from ImageNet).
T002_2 = {
    "source": "002 Table II (FashionMNIST downstream)",
    "rows": {  # pre-training set: TA, SA, SA/TA %
        "STL10": (89.98, 90.35, 100),
        "Food101": (89.88, 90.63, 101),
        "CIFAR10": (89.44, 90.34, 101),
    },
}

# 002 Table X: StolenEncoder and its variants (CIFAR10 pre-training, GTSRB downstream).
T002_10 = {
    "source": "002 Table X (CIFAR10 pre-training, GTSRB downstream)",
    "rows": {  # surrogate fraction -> method -> (SA %, queries)
        0.03: {
            "Pre-training-encoder": (66.42, 0),
            "StolenEncoder-w/o-aug": (44.47, 1500),
            "StolenEncoder-query-aug": (76.71, 151500),
            "StolenEncoder": (77.97, 1500),
        },
        0.05: {
            "Pre-training-encoder": (71.40, 0),
            "StolenEncoder-w/o-aug": (51.50, 2500),
            "StolenEncoder-query-aug": (78.91, 252500),
            "StolenEncoder": (79.43, 2500),
        },
    },
}

# 002 Tables XIII-XV and 000 Tables 10-11: TA (legitimate user) and SA (%) under defences.
DEFENCES = {
    "topk": {
        "source": "002 Table XIII (CIFAR10 pre-training, 512 features, GTSRB downstream)",
        "rows": {
            512: (80.67, 79.43),
            200: (80.62, 78.86),
            100: (78.07, 78.66),
            50: (72.57, 74.48),
            30: (68.24, 69.49),
            10: (56.59, 61.39),
            5: (47.77, 51.59),
            1: (26.28, 21.06),
        },
    },
    "round": {
        "source": "002 Table XIV (CIFAR10 pre-training, GTSRB downstream)",
        "rows": {3: (80.82, 78.59), 2: (80.50, 79.08), 1: (72.87, 77.05)},
    },
    "poison": {
        "source": "002 Table XV(a) (CIFAR10 pre-training, GTSRB downstream, l2 ball of radius ε)",
        "rows": {
            0: (80.67, 79.43),
            1: (80.73, 74.14),
            3: (82.43, 71.12),
            5: (80.44, 72.85),
            7: (75.81, 68.38),
            10: (66.91, 57.56),
        },
    },
    "noise": {
        "source": "000 Tables 10-11 (CIFAR10 victim, mse thief, 9,000 queries; legitimate / "
        "adversary)",
        "rows": {
            (0, 0): (66.7, 66.3),
            (0, 1): (63.9, 64.8),
            (0, 2): (67.2, 66.5),
            (10, 0): (67.1, 66.3),
            (10, 1): (65.7, 56.9),
            (10, 2): (67.9, 56.8),
        },
    },
}
