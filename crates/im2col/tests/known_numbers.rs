//! Numbers worked by hand, from the seed post's own examples: these pin the
//! maths itself, not just agreement between two implementations.

use im2col::{pool, Activation, ConvAlgorithm, ConvGeometry, ConvGrads, Convolution, PoolGeometry};

/// The post's 1-D convolution: 5 inputs y1..y5, a kernel w1..w3, 3 outputs
/// u_i = w1·y_i + w2·y_(i+1) + w3·y_(i+2). Its gradients, as the post derives them:
///   dE/dw1 = δ1·y1 + δ2·y2 + δ3·y3,  dE/dw2 = δ1·y2 + δ2·y3 + δ3·y4,  dE/dw3 = δ1·y3 + δ2·y4 + δ3·y5
///   dE/db  = δ1 + δ2 + δ3
///   dE/dy1 = δ1·w1,  dE/dy2 = δ1·w2 + δ2·w1,  dE/dy3 = δ1·w3 + δ2·w2 + δ3·w1, ...
#[test]
fn one_dimensional_convolution_of_the_post() {
    let g = ConvGeometry::builder(1, 1, 1)
        .input(1, 5)
        .build()
        .map(|g| ConvGeometry { kernel_w: 3, ..g })
        .unwrap();
    let y = [1.0, 2.0, 3.0, 4.0, 5.0];
    let w = [0.5, -1.0, 2.0];
    let b = [0.25];
    // Both algorithms (the direct one runs only where the CPU has AVX2).
    for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Direct] {
        let mut conv = Convolution::new(algorithm);
        let mut u = [0.0; 3];
        let cache = conv.forward(&g, 1, &y, &w, &b, Activation::Identity, &mut u);
        // u1 = 0.5 - 2 + 6 + 0.25, u2 = 1 - 3 + 8 + 0.25, u3 = 1.5 - 4 + 10 + 0.25
        assert_eq!(u, [4.75, 6.25, 7.75]);

        let delta = [1.0, -2.0, 3.0];
        let (mut dy, mut dw, mut db) = ([0.0; 5], [0.0; 3], [0.0; 1]);
        let grads = ConvGrads {
            input: Some(&mut dy),
            weight: &mut dw,
            bias: &mut db,
        };
        conv.backward(cache, &w, None, &delta, grads);
        check_post_gradients(dy, dw, db);
    }
}

fn check_post_gradients(dy: [f32; 5], dw: [f32; 3], db: [f32; 1]) {
    // dw1 = 1·1 − 2·2 + 3·3 = 6, dw2 = 1·2 − 2·3 + 3·4 = 8, dw3 = 1·3 − 2·4 + 3·5 = 10
    assert_eq!(dw, [6.0, 8.0, 10.0]);
    assert_eq!(db, [2.0]);
    // dy1 = 1·0.5 = 0.5, dy2 = 1·(−1) + (−2)·0.5 = −2, dy3 = 1·2 + (−2)(−1) + 3·0.5 = 5.5,
    // dy4 = (−2)·2 + 3·(−1) = −7, dy5 = 3·2 = 6
    assert_eq!(dy, [0.5, -2.0, 5.5, -7.0, 6.0]);
}

/// 2x2 average pooling over a 4x4 plane: each input receives δ/4 of its window.
#[test]
fn average_pooling_backward_by_hand() {
    let g = PoolGeometry::new(1, 4, 4, 2, 2, 0).unwrap();
    #[rustfmt::skip]
    let x = [
        1.0, 2.0,   3.0, 4.0,
        5.0, 6.0,   7.0, 8.0,

        0.0, 0.0,   1.0, 1.0,
        0.0, 4.0,   1.0, 1.0,
    ];
    let mut y = [0.0; 4];
    pool::avg_pool_forward(&g, 1, &x, &mut y);
    assert_eq!(y, [3.5, 5.5, 1.0, 1.0]);
    let dy = [4.0, -8.0, 2.0, 1.0];
    let mut dx = [0.0; 16];
    pool::avg_pool_backward(&g, 1, &dy, &mut dx);
    #[rustfmt::skip]
    assert_eq!(dx, [
        1.0, 1.0,   -2.0, -2.0,
        1.0, 1.0,   -2.0, -2.0,
        0.5, 0.5,   0.25, 0.25,
        0.5, 0.5,   0.25, 0.25,
    ]);
}

/// 2x2 max pooling: the whole δ goes to the window's maximum, zero elsewhere.
#[test]
fn max_pooling_backward_by_hand() {
    let g = PoolGeometry::new(1, 4, 4, 2, 2, 0).unwrap();
    #[rustfmt::skip]
    let x = [
        1.0, 9.0,   3.0, 4.0,
        5.0, 6.0,   8.0, 7.0,
        0.0, -1.0,  2.0, 2.0,
        -3.0, -2.0, 1.0, 0.0,
    ];
    let (mut y, mut arg) = ([0.0; 4], [0u32; 4]);
    pool::max_pool_forward(&g, 1, &x, &mut y, &mut arg);
    assert_eq!(y, [9.0, 8.0, 0.0, 2.0]);
    // Ties (the two 2.0s) go to the first in reading order.
    assert_eq!(arg, [1, 6, 8, 10]);
    let dy = [4.0, -8.0, 2.0, 1.0];
    let mut dx = [0.0; 16];
    pool::max_pool_backward(&g, 1, &dy, &arg, &mut dx);
    #[rustfmt::skip]
    assert_eq!(dx, [
        0.0, 4.0,   0.0, 0.0,
        0.0, 0.0,  -8.0, 0.0,
        2.0, 0.0,   1.0, 0.0,
        0.0, 0.0,   0.0, 0.0,
    ]);
}
